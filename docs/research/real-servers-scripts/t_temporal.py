import sys,time,asyncio,uuid
sys.path.insert(0,"/tmp/research18")
from harness import *
from datetime import timedelta
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker, UnsandboxedWorkflowRunner
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from google.protobuf.duration_pb2 import Duration
@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str: return f"hello {name}"
port,ui,hp,mp=free_port(),free_port(),free_port(),free_port()
db="/tmp/research18/run/temporal.db"
if os.path.exists(db): os.remove(db)
cmd=["venv/bin/temporal","server","start-dev","--ip","127.0.0.1","--port",str(port),"--ui-port",str(ui),"--http-port",str(hp),"--metrics-port",str(mp),"--db-filename",db,"--log-level","warn","--ui-disable-news-fetch"]
print(" ".join(cmd))
async def main():
    t0=time.time(); p=start(cmd,"run/temporal.log")
    print("tcp %.2f"%wait_tcp(port,60))
    async def connect():
        while True:
            try:
                c=await Client.connect(f"127.0.0.1:{port}"); await c.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default")); return c
            except Exception as e: await asyncio.sleep(0.2)
    c=await connect(); print("namespace ready %.2f"%(time.time()-t0))
    wait_http(f"http://127.0.0.1:{ui}/",30); print("ui ready %.2f"%(time.time()-t0))
    d=await c.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    print("default ns state",d.namespace_info.state,"retention",d.config.workflow_execution_retention_ttl.ToTimedelta())
    await c.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="runbooks",workflow_execution_retention_period=Duration(seconds=3*86400)))
    async with Worker(c,task_queue="tq",workflows=[Hello],workflow_runner=UnsandboxedWorkflowRunner()):
        r=await c.execute_workflow(Hello.run,"vextrus",id="wf-1",task_queue="tq"); print("workflow result",r)
    print("rss kB",rss_tree_kb(p.pid)); print("stop",stop(p,15))
    t0=time.time(); p=start(cmd,"run/temporal2.log"); wait_tcp(port,60); c=await connect(); print("restart ready %.2f"%(time.time()-t0))
    h=c.get_workflow_handle("wf-1"); desc=await h.describe(); print("after restart wf-1", desc.status, await h.result())
    d=await c.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="runbooks")); print("after restart ns runbooks retention",d.config.workflow_execution_retention_ttl.ToTimedelta())
    print("stop",stop(p,15))
asyncio.run(main())
