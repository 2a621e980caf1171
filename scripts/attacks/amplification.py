"""The amplification attack, against a running chatd (for BENCHMARKS.md): it seeds a chat
with 1,000 messages of 15 KB, then 8 connections of one user that never read each pipeline
256 history requests (limit 200). Prints the server's RSS every second, its peak, and RSS
10 s after the attackers leave.

    pip install websockets
    CHAT_JWT_SECRET=bench-secret chatd serve --listen 127.0.0.1:18095 --data-dir /tmp/amp \
        --send-rate 100000 --send-burst 100000 [--limit-send off] &
    python3 scripts/attacks/amplification.py 18095 $!

Run from the repository root (it mints tokens with target/release/chatctl).
"""
import asyncio, json, subprocess, sys, urllib.request

import websockets

PORT, PID = int(sys.argv[1]), int(sys.argv[2])
SECRET = "bench-secret"

def token(user, device=None):
    args = ["target/release/chatctl", "token", user]
    return subprocess.check_output(args, env={"CHAT_JWT_SECRET": SECRET}).decode().strip()

def rss():
    status = open(f"/proc/{PID}/status").read()
    field = lambda n: int([l for l in status.splitlines() if l.startswith(n)][0].split()[1])
    return field("VmRSS:") // 1024, field("VmHWM:") // 1024, field("Threads:")

def post(path, tok, body):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", json.dumps(body).encode(),
        {"Authorization": f"Bearer {tok}", "content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))

async def main():
    alice, mallory = token("alice"), token("mallory")
    chat = post("/v1/chats", alice, {"kind": "group", "title": "g", "members": ["mallory"]})["chat_id"]
    body = "m" * 15 * 1024
    async with websockets.connect(f"ws://127.0.0.1:{PORT}/v1/ws?token={alice}&device=seed", max_size=None) as ws:
        await ws.recv()
        for i in range(1000):
            await ws.send(json.dumps({"type": "send", "id": f"s{i}", "chat_id": chat, "client_msg_id": f"c{i}", "body": body}))
        got = 0
        while got < 1000:
            f = json.loads(await ws.recv())
            got += f.get("type") in ("sent", "error")
    base = rss()
    print("baseline RSS MiB", base[0], flush=True)
    conns = []
    for d in range(8):
        ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/v1/ws?token={mallory}&device=d{d}", max_size=None, max_queue=1)
        for i in range(256):
            await ws.send(json.dumps({"type": "history", "id": f"h{i}", "chat_id": chat, "limit": 200}))
        conns.append(ws)
    peak_threads = 0
    for s in range(15):
        await asyncio.sleep(1)
        now, hwm, threads = rss()
        peak_threads = max(peak_threads, threads)
        print(f"t={s+1}s RSS {now} MiB peak {hwm} MiB threads {threads}", flush=True)
    for ws in conns:
        ws.transport.abort()
    await asyncio.sleep(10)
    now, hwm, _ = rss()
    print(f"RESULT baseline {base[0]} MiB, peak {hwm} MiB, {peak_threads} threads at most, {now} MiB 10 s after the attackers left", flush=True)

asyncio.run(main())
