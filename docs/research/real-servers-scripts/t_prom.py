import sys,time,json,threading,http.server,subprocess,urllib.request
sys.path.insert(0,"/tmp/research18")
from harness import *
D="/tmp/research18/run/prom"; os.makedirs(D+"/data",exist_ok=True); os.makedirs(D+"/am",exist_ok=True)
got=[]; T0=[0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        b=json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        got.append((time.time()-T0[0],b)); self.send_response(200); self.end_headers()
    def log_message(self,*a): pass
hp=free_port(); srv=http.server.ThreadingHTTPServer(("127.0.0.1",hp),H); threading.Thread(target=srv.serve_forever,daemon=True).start()
pp,ap=free_port(),free_port()
open(D+"/rules.yml","w").write("""groups:
- name: sandbox
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1) > 0
    for: 0s
    labels: {severity: page}
    annotations: {summary: "always firing"}
  - alert: TargetDown
    expr: up == 0
    for: 1m
    labels: {severity: warn}
""")
open(D+"/rules_test.yml","w").write("""rule_files: [rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'up{job="x",instance="a"}'
    values: '0 0 0'
  alert_rule_test:
  - eval_time: 2m
    alertname: TargetDown
    exp_alerts:
    - exp_labels: {severity: warn, job: x, instance: a}
""")
open(D+"/prometheus.yml","w").write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{D}/rules.yml]
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['127.0.0.1:{ap}']
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['127.0.0.1:{pp}']
""")
open(D+"/alertmanager.yml","w").write(f"""route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: http://127.0.0.1:{hp}/alert
    send_resolved: true
""")
for c in (["promtool","check","config",D+"/prometheus.yml"],["promtool","check","rules",D+"/rules.yml"],["promtool","test","rules","rules_test.yml"],["amtool","check-config",D+"/alertmanager.yml"]):
    r=subprocess.run(c,capture_output=True,text=True,cwd=D); print("$"," ".join(c),"-> rc",r.returncode); print((r.stdout+r.stderr).strip())
pcmd=["prometheus","--config.file="+D+"/prometheus.yml","--storage.tsdb.path="+D+"/data","--web.listen-address=127.0.0.1:%d"%pp,"--web.enable-lifecycle","--rules.alert.resend-delay=2s","--storage.tsdb.retention.time=1h","--log.level=debug"]
acmd=["prometheus-alertmanager","--config.file="+D+"/alertmanager.yml","--storage.path="+D+"/am","--web.listen-address=127.0.0.1:%d"%ap,"--cluster.listen-address=","--log.level=debug"]
print(" ".join(pcmd)); print(" ".join(acmd))
T0[0]=t0=time.time(); P=start(pcmd,"run/prometheus.log"); A=start(acmd,"run/alertmanager.log")
try:
    print("am ready %.2f"%wait_http(f"http://127.0.0.1:{ap}/-/ready",30))
    print("prom ready %.2f (since start)"%(wait_http(f"http://127.0.0.1:{pp}/-/ready",30)+0)); print("prom ready abs %.2f"%(time.time()-t0))
    print("prom alerts",urllib.request.urlopen(f"http://127.0.0.1:{pp}/api/v1/alerts").read()[:300]); print("notif metrics",[l for l in urllib.request.urlopen(f"http://127.0.0.1:{pp}/metrics").read().decode().splitlines() if l.startswith("prometheus_notifications")]); print("prom AMs",urllib.request.urlopen(f"http://127.0.0.1:{pp}/api/v1/alertmanagers").read()[:300]); print("am alerts",urllib.request.urlopen(f"http://127.0.0.1:{ap}/api/v2/alerts").read()[:300]); wait_fn(lambda: len(got)>0,30); print("webhook received at %.2f s after start"%got[0][0], json.dumps(got[0][1])[:300])
    print("rss prom kB",rss_tree_kb(P.pid),"am kB",rss_tree_kb(A.pid))
    q=json.loads(urllib.request.urlopen(f"http://127.0.0.1:{pp}/api/v1/query?query=up").read()); print("up",q["data"]["result"])
    al=json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ap}/api/v2/alerts").read()); print("am alerts",[a["labels"]["alertname"] for a in al])
finally:
    print("stop",stop(P),stop(A)); srv.shutdown()
