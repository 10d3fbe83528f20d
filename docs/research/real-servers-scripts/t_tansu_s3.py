import sys, time, subprocess
sys.path.insert(0,"/tmp/research18")
from harness import *
import boto3
from botocore.config import Config
AK,SK="testkey","testsecret"
sp=free_port(); os.makedirs("run/rcl2",exist_ok=True)
s3p=start(["venv/bin/rclone","serve","s3","--addr",f"127.0.0.1:{sp}","--auth-key",f"{AK},{SK}","run/rcl2"],"run/rcl2.log")
wait_tcp(sp)
boto3.client("s3",endpoint_url=f"http://127.0.0.1:{sp}",aws_access_key_id=AK,aws_secret_access_key=SK,region_name="us-east-1").create_bucket(Bucket="tansu")
env={"AWS_ACCESS_KEY_ID":AK,"AWS_SECRET_ACCESS_KEY":SK,"AWS_DEFAULT_REGION":"us-east-1","AWS_ENDPOINT":f"http://127.0.0.1:{sp}","AWS_ALLOW_HTTP":"true"}
import t_tansu_lib as L
try:
    L.run("s3://tansu/", env, restart=True)
finally:
    print("rclone stop",stop(s3p))
    print("files:", [os.path.join(d,f) for d,_,fs in os.walk("run/rcl2") for f in fs][:20])
