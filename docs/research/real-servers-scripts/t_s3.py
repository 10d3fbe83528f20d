import sys, time
sys.path.insert(0,"/tmp/research18")
from harness import *
import boto3, botocore
from botocore.config import Config
which=sys.argv[1]
port=free_port(); os.makedirs(f"run/{which}data",exist_ok=True)
AK,SK="testkey","testsecret"
if which=="rclone":
    cmd=["venv/bin/rclone","serve","s3","--addr",f"127.0.0.1:{port}","--auth-key",f"{AK},{SK}","--vfs-cache-mode","off",f"run/{which}data"]
    env={"RCLONE_CONFIG":"/tmp/research18/run/rclone.conf"}
else:
    # weed mini / weed server -s3
    cmd=None
print(" ".join(cmd))
t0=time.time(); p=start(cmd,f"run/{which}.log",env=env)
print("tcp ready %.2f"%wait_tcp(port)); print("rss kB",rss_tree_kb(p.pid))
s3=boto3.client("s3",endpoint_url=f"http://127.0.0.1:{port}",aws_access_key_id=AK,aws_secret_access_key=SK,region_name="us-east-1",config=Config(s3={"addressing_style":"path"}))
print("create",s3.create_bucket(Bucket="backups")["ResponseMetadata"]["HTTPStatusCode"])
s3.put_object(Bucket="backups",Key="a/b.txt",Body=b"hi")
print("head_bucket",s3.head_bucket(Bucket="backups")["ResponseMetadata"]["HTTPStatusCode"])
print("get",s3.get_object(Bucket="backups",Key="a/b.txt")["Body"].read())
print("list",[o["Key"] for o in s3.list_objects_v2(Bucket="backups").get("Contents",[])])
try: print("head missing bucket", s3.head_bucket(Bucket="nope"))
except botocore.exceptions.ClientError as e: print("head missing ->",e.response["Error"]["Code"])
try: s3.put_bucket_versioning(Bucket="backups",VersioningConfiguration={"Status":"Enabled"}); print("versioning put ok")
except Exception as e: print("versioning put err",e)
try: print("versioning get",s3.get_bucket_versioning(Bucket="backups"))
except Exception as e: print("versioning get err",e)
try: s3.create_bucket(Bucket="backups"); print("dup create ok(!)")
except botocore.exceptions.ClientError as e: print("dup create ->",e.response["Error"]["Code"])
try: s3.get_object(Bucket="backups",Key="x"); 
except botocore.exceptions.ClientError as e: print("missing key ->",e.response["Error"]["Code"])
try: s3.list_objects_v2(Bucket="backups"); s3.head_bucket(Bucket="backups"); s3.get_object(Bucket="backups",Key="a/b.txt")
except Exception as e: print(e)
bad=boto3.client("s3",endpoint_url=f"http://127.0.0.1:{port}",aws_access_key_id="x",aws_secret_access_key="y",region_name="us-east-1")
try: bad.list_buckets(); print("bad creds accepted(!)")
except botocore.exceptions.ClientError as e: print("bad creds ->",e.response["Error"]["Code"])
print("on disk:", [os.path.join(d,f) for d,_,fs in os.walk(f"run/{which}data") for f in fs])
print("stop",stop(p))
