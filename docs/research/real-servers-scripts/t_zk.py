import sys,time,socket
sys.path.insert(0,"/tmp/research18")
from harness import *
def four(port,cmd):
    s=socket.create_connection(("127.0.0.1",port),2); s.sendall(cmd.encode()); out=b""
    while True:
        d=s.recv(4096)
        if not d: break
        out+=d
    return out.decode()
mode=sys.argv[1]
port=free_port(); admin=free_port(); d=f"/tmp/research18/run/zk-{mode}"; os.makedirs(d+"/data",exist_ok=True)
cp="/tmp/research18/run/zkconf:/usr/share/java/zookeeper.jar"
os.makedirs("run/zkconf",exist_ok=True)
open("run/zkconf/log4j.properties","w").write("log4j.rootLogger=INFO, CONSOLE\nlog4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\nlog4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\nlog4j.appender.CONSOLE.layout.ConversionPattern=%d %-5p [%t] %c{1} - %m%n\n")
if mode=="cfg":
    cfg=f"{d}/zoo.cfg"
    open(cfg,"w").write(f"tickTime=2000\ndataDir={d}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=ruok,mntr,srvr\nadmin.enableServer=false\n")
    cmd=["java","-Xms64m","-Xmx256m","-cp",cp,"-Dzookeeper.log.dir="+d,"org.apache.zookeeper.server.ZooKeeperServerMain",cfg]
else:
    cmd=["java","-Xmx256m","-cp",cp,"-Dzookeeper.4lw.commands.whitelist=ruok,mntr,srvr","-Dzookeeper.admin.enableServer=false","org.apache.zookeeper.server.ZooKeeperServerMain",str(port),d+"/data"]
print(" ".join(cmd))
t0=time.time(); p=start(cmd,f"run/zk-{mode}.log")
print("tcp %.2f"%wait_tcp(port,30))
wait_fn(lambda: four(port,"ruok")=="imok",30); print("imok at %.2f"%(time.time()-t0)); wait_fn(lambda: "Mode:" in four(port,"srvr"),30); print("srvr Mode at %.2f"%(time.time()-t0)); time.sleep(2)
print("ruok ->",four(port,"ruok")); print(four(port,"srvr")); print("mntr:", [l for l in four(port,"mntr").splitlines() if "server_state" in l or "version" in l])
print("stat (not whitelisted) ->", repr(four(port,"stat")[:80]))
print("rss kB",rss_tree_kb(p.pid))
print("stop",stop(p))
