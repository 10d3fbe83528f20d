import sys,time,json,ssl,threading,http.server,datetime,urllib.request
sys.path.insert(0,"/tmp/research18")
from harness import *
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
D="/tmp/research18/run/traefik"; os.makedirs(D+"/dyn",exist_ok=True)
# self-signed cert
k=ec.generate_private_key(ec.SECP256R1())
n=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,"localhost")])
now=datetime.datetime.now(datetime.timezone.utc)
c=(x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key()).serial_number(x509.random_serial_number())
   .not_valid_before(now-datetime.timedelta(minutes=5)).not_valid_after(now+datetime.timedelta(days=2))
   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),False).sign(k,hashes.SHA256()))
open(D+"/cert.pem","wb").write(c.public_bytes(serialization.Encoding.PEM))
open(D+"/key.pem","wb").write(k.private_bytes(serialization.Encoding.PEM,serialization.PrivateFormat.PKCS8,serialization.NoEncryption()))
# backend
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b=json.dumps({"path":self.path,"xff":self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(200); self.send_header("Content-Type","application/json"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self,*a): pass
bp=free_port(); srv=http.server.ThreadingHTTPServer(("127.0.0.1",bp),H); threading.Thread(target=srv.serve_forever,daemon=True).start()
web,websecure,admin=free_port(),free_port(),free_port()
static=f"""
entryPoints:
  web:
    address: "127.0.0.1:{web}"
    http:
      redirections:
        entryPoint:
          to: websecure
          scheme: https
          permanent: true
  websecure:
    address: "127.0.0.1:{websecure}"
  traefik:
    address: "127.0.0.1:{admin}"
api:
  dashboard: false
ping:
  entryPoint: traefik
providers:
  file:
    directory: "{D}/dyn"
    watch: true
log:
  level: INFO
global:
  checkNewVersion: false
  sendAnonymousUsage: false
"""
open(D+"/traefik.yml","w").write(static)
dyn=f"""
http:
  routers:
    api-router:
      rule: "Host(`127.0.0.1`) && PathPrefix(`/api`)"
      entryPoints: [traefik]
      service: api@internal
    svc-orders:
      rule: "PathPrefix(`/api/orders`)"
      entryPoints: [websecure]
      middlewares: [strip-api, rl]
      service: orders
      tls: {{}}
  middlewares:
    strip-api:
      stripPrefix:
        prefixes: ["/api/orders"]
    rl:
      rateLimit:
        average: 5
        period: 1s
        burst: 5
  services:
    orders:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{bp}"
tls:
  certificates:
    - certFile: "{D}/cert.pem"
      keyFile: "{D}/key.pem"
  stores:
    default:
      defaultCertificate:
        certFile: "{D}/cert.pem"
        keyFile: "{D}/key.pem"
"""
open(D+"/dyn/routes.yml","w").write(dyn)
cmd=["venv/bin/traefik","--configFile="+D+"/traefik.yml"]
print(" ".join(cmd)); print(static); 
t0=time.time(); p=start(cmd,"run/traefik.log")
try:
    print("ping ready %.2f"%wait_http(f"http://127.0.0.1:{admin}/ping",30))
    def routed():
        return "svc-orders@file" in urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/http/routers",timeout=1).read().decode()
    wait_fn(routed,30); print("routers loaded %.2f"%(time.time()-t0)); print("rss kB",rss_tree_kb(p.pid))
    g=lambda path: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}",timeout=2).read())
    print("entrypoints",[(e["name"],e["address"]) for e in g("/api/entrypoints")])
    print("routers",[(r["name"],r["status"],r.get("rule")) for r in g("/api/http/routers")])
    raw=g("/api/rawdata"); print("rawdata keys",list(raw), "middlewares",list(raw.get("middlewares",{})))
    print("overview", g("/api/overview")["http"])
    ctx=ssl.create_default_context(cafile=D+"/cert.pem")
    r=urllib.request.urlopen(f"https://localhost:{websecure}/api/orders/items?x=1",context=ctx,timeout=2); print("https ->",r.status,r.read())
    class NoRedir(urllib.request.HTTPRedirectHandler):
        def redirect_request(self,*a,**kw): return None
    op=urllib.request.build_opener(NoRedir)
    try: op.open(f"http://127.0.0.1:{web}/api/orders/x",timeout=2)
    except urllib.error.HTTPError as e: print("http ->",e.code,e.headers.get("Location"))
    codes=[]
    for i in range(15):
        try: codes.append(urllib.request.urlopen(f"https://localhost:{websecure}/api/orders/r",context=ctx,timeout=2).status)
        except urllib.error.HTTPError as e: codes.append(e.code)
    print("burst of 15 ->",codes)
    try: urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/rawdata",timeout=2); 
    except Exception as e: print(e)
    try: urllib.request.urlopen(f"http://localhost:{admin}/api/rawdata",timeout=2); print("Host localhost on admin: 200 (rule not matched?)")
    except urllib.error.HTTPError as e: print("admin api via Host localhost ->",e.code)
    try: urllib.request.urlopen(f"https://localhost:{websecure}/api/rawdata",context=ctx,timeout=2); print("api exposed on websecure(!)")
    except urllib.error.HTTPError as e: print("api on websecure ->",e.code)
finally:
    print("stop",stop(p)); srv.shutdown()
print(open("run/traefik.log").read()[-1500:])
