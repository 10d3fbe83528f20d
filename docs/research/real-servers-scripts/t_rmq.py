import sys,time,subprocess,socket
sys.path.insert(0,"/tmp/research18")
from harness import *
import pika
D="/tmp/research18/run/rmq"; 
import shutil; (shutil.rmtree(D,ignore_errors=True) if "--keep" not in sys.argv else None)
for s in ("mnesia","log","home"): os.makedirs(f"{D}/{s}",exist_ok=True)
def pick():
    while True:
        p=free_port()
        if p+20000<=65535: return p
import json
if "--keep" in sys.argv: port,epmd,dist=json.load(open("run/rmqports.json"))
else: port=pick(); epmd=free_port(); dist=free_port(); json.dump([port,epmd,dist],open("run/rmqports.json","w"))
open(D+"/rabbitmq.conf","w").write(f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\ndefault_user = sbx\ndefault_pass = sbxpass\nlog.console = true\nlog.file = false\n")
open(D+"/enabled_plugins","w").write("[].\n")
env={"HOME":D+"/home","RABBITMQ_NODENAME":"sbx@localhost","RABBITMQ_NODE_IP_ADDRESS":"127.0.0.1","RABBITMQ_NODE_PORT":str(port),
     "RABBITMQ_DIST_PORT":str(dist),"RABBITMQ_MNESIA_BASE":D+"/mnesia","RABBITMQ_LOG_BASE":D+"/log","RABBITMQ_CONFIG_FILE":D+"/rabbitmq.conf",
     "RABBITMQ_ENABLED_PLUGINS_FILE":D+"/enabled_plugins","RABBITMQ_PID_FILE":D+"/rmq.pid","ERL_EPMD_PORT":str(epmd),"ERL_EPMD_ADDRESS":"127.0.0.1",
     "RABBITMQ_ADVANCED_CONFIG_FILE":D+"/advanced.config","RABBITMQ_CONF_ENV_FILE":D+"/rabbitmq-env.conf"}
cmd=["/usr/lib/rabbitmq/bin/rabbitmq-server"]
env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]="-kernel inet_dist_use_interface {127,0,0,1}"
E=start(["/usr/lib/erlang/erts-13.1.5/bin/epmd","-port",str(epmd),"-address","127.0.0.1"],"run/epmd.log"); wait_tcp(epmd)
print(env); t0=time.time(); p=start(cmd,"run/rmq.log",env=env)
try:
    print("amqp tcp %.2f"%wait_tcp(port,90))
    cred=pika.PlainCredentials("sbx","sbxpass")
    def conn():
        c=pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1",port,credentials=cred,connection_attempts=1,socket_timeout=2)); return c
    wait_fn(lambda: conn().close() or True,90); print("amqp login ok %.2f"%(time.time()-t0))
    c=conn(); ch=c.channel(); ch.queue_declare("q1",durable=True); ch.basic_publish("","q1",b"hello"); 
    m=None
    for _ in range(20):
        m=ch.basic_get("q1",auto_ack=True)
        if m[0]: break
        time.sleep(0.1)
    print("got",m[2], "server",c._impl.server_properties.get("version")); c.close()
    print("rss kB",rss_tree_kb(p.pid))
    t1=time.time(); r=subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl","-n","sbx@localhost","list_queues","name","messages"],env={**os.environ,**env},capture_output=True,text=True); print("rabbitmqctl rc",r.returncode,"%.2fs"%(time.time()-t1),r.stdout.strip()[-200:],r.stderr[-300:])
    t1=time.time(); r=subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmq-diagnostics","-n","sbx@localhost","-q","ping"],env={**os.environ,**env},capture_output=True,text=True); print("diag ping rc",r.returncode,"%.2fs"%(time.time()-t1),r.stdout.strip()[-200:])
    print(subprocess.run(["ss","-ltnp"],capture_output=True,text=True).stdout.count("beam"), [l.split()[3] for l in subprocess.run(["ss","-ltnp"],capture_output=True,text=True).stdout.splitlines() if "beam" in l or "epmd" in l])
finally:
    t1=time.time(); print("stop",stop(p,30),"%.2fs"%(time.time()-t1)); print("epmd stop",stop(E))
    print([l.split()[:1] for l in subprocess.run(["ps","-eo","pid,args"],capture_output=True,text=True).stdout.splitlines() if "epmd" in l or "beam" in l and "sbx" in l])
