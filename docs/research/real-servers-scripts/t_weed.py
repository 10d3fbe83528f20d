import sys, time, json
sys.path.insert(0,"/tmp/research18")
from harness import *
import boto3, botocore
from botocore.config import Config
AK,SK="testkey","testsecret"
os.makedirs("run/weeddata",exist_ok=True)
json.dump({"identities":[{"name":"admin","credentials":[{"accessKey":AK,"secretKey":SK}],"actions":["Admin","Read","Write","List","Tagging"]}]},open("run/weed_s3.json","w"))
P={k:free_port() for k in ["master.port","master.port.grpc","volume.port","volume.port.grpc","filer.port","filer.port.grpc","s3.port","s3.port.grpc","s3.port.iceberg","admin.port","admin.port.grpc"]}
cmd=["venv/bin/weed","mini","-dir=run/weeddata","-ip=127.0.0.1","-ip.bind=127.0.0.1","-webdav=false","-admin.ui=false","-s3.config=run/weed_s3.json"]+[f"-{k}={v}" for k,v in P.items()]
print(" ".join(cmd))
t0=time.time(); p=start(cmd,"run/weed.log")
port=P["s3.port"]
print("s3 tcp %.2f"%wait_tcp(port,90))
s3=boto3.client("s3",endpoint_url=f"http://127.0.0.1:{port}",aws_access_key_id=AK,aws_secret_access_key=SK,region_name="us-east-1",config=Config(s3={"addressing_style":"path"},retries={"max_attempts":1}))
def ok(): s3.list_buckets(); return True
wait_fn(ok,90); print("s3 list_buckets ok %.2f"%(time.time()-t0))
def put():
    try: s3.create_bucket(Bucket="backups")
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou","BucketAlreadyExists"): raise
    s3.put_object(Bucket="backups",Key="a/b.txt",Body=b"hi"); return True
wait_fn(put,90); print("first put ok %.2f"%(time.time()-t0)); print("rss kB",rss_tree_kb(p.pid))
print("head_bucket",s3.head_bucket(Bucket="backups")["ResponseMetadata"]["HTTPStatusCode"])
s3.put_bucket_versioning(Bucket="backups",VersioningConfiguration={"Status":"Enabled"})
print("versioning",s3.get_bucket_versioning(Bucket="backups").get("Status"))
s3.put_object(Bucket="backups",Key="a/b.txt",Body=b"v2")
print("versions",[(v["VersionId"][:8],v["IsLatest"]) for v in s3.list_object_versions(Bucket="backups").get("Versions",[])])
bad=boto3.client("s3",endpoint_url=f"http://127.0.0.1:{port}",aws_access_key_id="x",aws_secret_access_key="y",region_name="us-east-1")
try: bad.list_buckets(); print("bad creds accepted(!)")
except botocore.exceptions.ClientError as e: print("bad creds ->",e.response["Error"]["Code"])
print("stop",stop(p,20)); print("total secs",time.time()-t0)
