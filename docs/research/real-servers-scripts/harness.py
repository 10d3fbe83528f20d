import os, socket, subprocess, time, signal, urllib.request
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
def rss_tree_kb(pid):
    # sum RSS of pid and descendants
    tot=0; pids=[pid]; seen=set()
    while pids:
        p=pids.pop()
        if p in seen: continue
        seen.add(p)
        try:
            for l in open(f"/proc/{p}/status"):
                if l.startswith("VmRSS:"): tot+=int(l.split()[1])
        except FileNotFoundError: pass
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                try: pids += [int(x) for x in open(f"/proc/{p}/task/{t}/children").read().split()]
                except FileNotFoundError: pass
        except FileNotFoundError: pass
    return tot
def start(cmd, log, env=None, cwd=None):
    e=dict(os.environ); e.update(env or {})
    f=open(log,"wb")
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=e, cwd=cwd, start_new_session=True)
def wait_tcp(port, timeout=60, host="127.0.0.1"):
    t0=time.time()
    while time.time()-t0<timeout:
        try: socket.create_connection((host,port),0.2).close(); return time.time()-t0
        except OSError: time.sleep(0.05)
    raise TimeoutError(port)
def wait_http(url, timeout=60, ok=lambda r: r.status<500):
    t0=time.time()
    while time.time()-t0<timeout:
        try:
            r=urllib.request.urlopen(url, timeout=1)
            if ok(r): return time.time()-t0
        except Exception: pass
        time.sleep(0.05)
    raise TimeoutError(url)
def wait_fn(fn, timeout=60):
    t0=time.time(); last=None
    while time.time()-t0<timeout:
        try:
            if fn(): return time.time()-t0
        except Exception as e: last=e
        time.sleep(0.1)
    raise TimeoutError(repr(last))
def stop(p, timeout=10):
    if p.poll() is not None: return p.returncode
    os.killpg(p.pid, signal.SIGTERM)
    try: return p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); return p.wait()
