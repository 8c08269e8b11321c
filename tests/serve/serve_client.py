#!/usr/bin/python3
"""Loopback checks of a running `mamba2 serve` (standard library only: urllib, threads, sockets).

Used by tests/scripts/serve_*_test.sh, which start the server and pass its base URL:
  serve_client.py concurrency  --base URL --alone-base URL
  serve_client.py prefix-cache --base URL --cold-base URL
  serve_client.py bad-input    --base URL
  serve_client.py auth         --base URL --key KEY
Each check prints what it did and exits non-zero with a FAIL line naming what went wrong.
"""

import argparse
import json
import queue
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

TIMEOUT = 120


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def call(base, method, path, body=None, headers=None, raw=None):
    """One request -> (status, parsed JSON or text, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            status, text, hdrs = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def complete(base, body, headers=None):
    """A completion, streamed or not, reduced to {text, finish_reason, usage, logprobs}."""
    if not body.get("stream"):
        status, j, _ = call(base, "POST", "/v1/completions", body, headers)
        check(status == 200, f"status {status}: {j}")
        check(j["object"] == "text_completion" and len(j["choices"]) == 1, f"bad response shape: {j}")
        c = j["choices"][0]
        return {"text": c["text"], "finish_reason": c["finish_reason"], "usage": j["usage"],
                "token_logprobs": (c["logprobs"] or {}).get("token_logprobs")}
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    text, finish, usage, done, lps = [], None, None, False, []
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        check(r.status == 200, f"stream status {r.status}")
        check(r.headers.get("Content-Type", "").startswith("text/event-stream"), "stream is not text/event-stream")
        for line in r:
            line = line.decode().rstrip("\n")
            if not line.startswith("data: "):
                continue  # blank separators and keep-alive comments
            check(not done, "data after [DONE]")
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
                continue
            ev = json.loads(payload)
            check("error" not in ev, f"error event: {ev}")
            if ev.get("usage"):
                usage = ev["usage"]
            for c in ev["choices"]:
                check(finish is None, "a chunk after the finish_reason chunk")
                text.append(c["text"])
                if c.get("logprobs"):
                    lps += c["logprobs"]["token_logprobs"]
                if c["finish_reason"] is not None:
                    finish = c["finish_reason"]
    check(done, "stream ended without data: [DONE]")
    check(finish is not None, "stream had no finish_reason")
    return {"text": "".join(text), "finish_reason": finish, "usage": usage, "token_logprobs": lps or None}


def metrics(base, headers=None):
    status, text, _ = call(base, "GET", "/metrics", headers=headers)
    check(status == 200, f"/metrics status {status}")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


WORDS = ("the king and queen of england went to war with france for many years while the people "
         "of the land did suffer hunger and cold but love remained in their hearts and songs were "
         "sung of brave knights who fought for honour and glory under the banner of the rose").split()


def prompt_text(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + ","


# ------------------------------------------------------------------------------------------------

def run_concurrency(args):
    rng = random.Random(1234)
    specs = []
    lengths = [1, 3, 8, 20, 60, 150, 400, 700]  # words; the longest run past the 256-token pieces
    for i in range(32):
        body = {"prompt": prompt_text(rng, lengths[i % len(lengths)]), "max_tokens": rng.randint(8, 40),
                "temperature": 0}
        if i % 4 == 3:  # seeded sampling: must repeat exactly too
            body.update(temperature=0.8, top_p=0.95, top_k=50, seed=1000 + i)
        if i % 8 == 5:
            body["stop"] = ["\n\n", "."]
        if i % 5 == 0:
            body["logprobs"] = 2
        specs.append(body)

    # The reference: each request alone, on a second server started the same way but without a
    # prompt-state cache, so the server under test starts cold and its cache hits are checked too.
    t0 = time.time()
    alone = [complete(args.alone_base, dict(s)) for s in specs]
    t_alone = time.time() - t0
    print(f"  {len(specs)} distinct requests one at a time (reference server): {t_alone:.1f} s")

    # 64 requests: each spec streamed and not streamed, shuffled, from 16 client threads.
    jobs = [(i, stream) for i in range(len(specs)) for stream in (False, True)]
    rng.shuffle(jobs)
    q = queue.Queue()
    for j in jobs:
        q.put(j)
    results, errors = {}, []
    lock = threading.Lock()

    def client():
        while True:
            try:
                i, stream = q.get_nowait()
            except queue.Empty:
                return
            try:
                r = complete(args.base, dict(specs[i], stream=stream,
                                             stream_options={"include_usage": True} if stream else None))
                with lock:
                    results[(i, stream)] = r
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(f"request {i} stream={stream}: {e!r}")

    t0 = time.time()
    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_conc = time.time() - t0
    print(f"  {len(jobs)} requests from 16 clients: {t_conc:.1f} s")
    check(not errors, f"{len(errors)} requests failed: {errors[:3]}")
    check(len(results) == len(jobs), f"{len(jobs) - len(results)} responses lost")
    mismatches = []
    for (i, stream), r in sorted(results.items()):
        a = alone[i]
        for key in ("text", "finish_reason"):
            if r[key] != a[key]:
                mismatches.append(f"request {i} stream={stream}: {key} {r[key]!r:.80} != alone {a[key]!r:.80}")
        # Exact: a decode step of up to 8 sequences (--max-seqs 8) gives each the bits it gets
        # alone on the cpu backend (tests/model/batch_invariance_test.cpp).
        lr, la = r["token_logprobs"] or [], a["token_logprobs"] or []
        if lr != la:
            mismatches.append(f"request {i} stream={stream}: token_logprobs {lr!r:.80} != alone {la!r:.80}")
        if r["usage"]["completion_tokens"] != a["usage"]["completion_tokens"]:
            mismatches.append(f"request {i} stream={stream}: completion_tokens differ")
        if r["finish_reason"] == "length" and r["usage"]["completion_tokens"] != specs[i]["max_tokens"]:
            mismatches.append(f"request {i}: finish_reason length but {r['usage']['completion_tokens']} tokens")
    check(not mismatches, f"{len(mismatches)} responses differ from the same request alone:\n    " +
          "\n    ".join(mismatches[:5]))
    gen = sum(r["usage"]["completion_tokens"] for r in results.values())
    print(f"  all {len(jobs)} responses identical to the request run alone ({gen} tokens)")

    # A response's last bytes can reach the client before the scheduler has retired its
    # sequence and updated the gauges, and before its handler has counted it: give it a moment.
    deadline = time.time() + 5
    while True:
        m = metrics(args.base)
        idle = m["mamba2_running_sequences"] == 0 and m["mamba2_queue_length"] == 0
        ok = m.get('mamba2_requests_total{endpoint="/v1/completions",status="200"}', 0)
        if (idle and ok >= len(jobs)) or time.time() > deadline:
            break
        time.sleep(0.05)
    check(ok == len(jobs), f"metrics count {ok} completions, expected {len(jobs)}")
    check(idle, "sequences left running/queued 5 s after the last response")
    print(f"  decode steps {m['mamba2_decode_steps_total']:.0f} advanced {m['mamba2_decode_rows_total']:.0f} "
          f"sequence-tokens (mean batch {m['mamba2_decode_rows_total'] / max(1, m['mamba2_decode_steps_total']):.2f})"
          f"; cache hits {m['mamba2_prefix_cache_hits_total']:.0f}")
    check(m["mamba2_decode_rows_total"] > m["mamba2_decode_steps_total"], "no decode step ever batched two sequences")

    # A client that goes away mid-stream frees its sequence.
    disconnect_mid_stream(args.base, m["mamba2_cancelled_total"])
    print("  a client that disconnected mid-stream had its sequence freed")


def disconnect_mid_stream(base, cancelled_before, headers=None):
    u = urlparse(base)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 3000, "temperature": 0,
                       "ignore_eos": True, "stream": True}).encode()
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data: ") < 3:
        chunk = s.recv(4096)
        check(chunk, "stream closed early")
        got += chunk
    s.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        m = metrics(base, headers)
        if m["mamba2_running_sequences"] == 0 and m["mamba2_cancelled_total"] > cancelled_before:
            return
        time.sleep(0.2)
    raise Fail(f"the disconnected stream's sequence was not freed: {m}")


# ------------------------------------------------------------------------------------------------

def timed(base, body):
    t0 = time.time()
    r = complete(base, body)
    return r, time.time() - t0


def run_prefix_cache(args):
    rng = random.Random(99)
    shared = prompt_text(rng, 900)  # ~1000+ tokens: several 256-token pieces
    a = {"prompt": shared + " and so the story ends", "max_tokens": 24, "temperature": 0, "logprobs": 1}
    b = {"prompt": shared + " but then a stranger came to town", "max_tokens": 24, "temperature": 0, "logprobs": 1}
    m0 = metrics(args.base)
    ra, ta = timed(args.base, a)
    check(ra["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, "the first request hit a cache")
    rb, tb = timed(args.base, b)
    ra2, ta2 = timed(args.base, a)
    m1 = metrics(args.base)
    ca, cb = timed(args.cold_base, a)[0], timed(args.cold_base, b)[0]
    n_a, n_b = ra["usage"]["prompt_tokens"], rb["usage"]["prompt_tokens"]
    hit_b = rb["usage"]["prompt_tokens_details"]["cached_tokens"]
    hit_a2 = ra2["usage"]["prompt_tokens_details"]["cached_tokens"]
    print(f"  prompt A {n_a} tokens cold: {ta * 1000:.0f} ms; prompt B {n_b} tokens resumed from {hit_b}: "
          f"{tb * 1000:.0f} ms; A again resumed from {hit_a2}: {ta2 * 1000:.0f} ms")
    check(hit_b > 0 and hit_b % 256 == 0, f"B resumed from {hit_b} tokens, expected a multiple of 256 > 0")
    check(hit_b <= n_b, "cached tokens beyond the prompt")
    check(hit_a2 == n_a, f"A again resumed from {hit_a2}, expected its whole prompt {n_a}")
    for name, got, cold in (("B", rb, cb), ("A", ra, ca), ("A again", ra2, ca)):
        check(got["text"] == cold["text"], f"{name}: text differs from a cold server: {got['text']!r} != {cold['text']!r}")
        check(got["token_logprobs"] == cold["token_logprobs"], f"{name}: logprobs differ from a cold server")
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
    check(d["mamba2_prefix_cache_hits_total"] == 2, f"metrics show {d['mamba2_prefix_cache_hits_total']} hits, expected 2")
    check(d["mamba2_prefix_cache_misses_total"] == 1, "metrics: expected 1 miss")
    check(d["mamba2_prefix_cache_hit_tokens_total"] == hit_b + hit_a2,
          f"metrics hit tokens {d['mamba2_prefix_cache_hit_tokens_total']} != {hit_b + hit_a2}")
    check(d["mamba2_prefill_tokens_total"] == n_a + n_b - hit_b, "metrics: prefill tokens do not add up")
    check(m1["mamba2_prefix_cache_bytes"] > 0 and m1["mamba2_prefix_cache_entries"] > 0, "metrics: empty cache")
    check(m1["mamba2_prefix_cache_bytes"] <= m1["mamba2_prefix_cache_budget_bytes"], "cache over its budget")
    print(f"  hits identical to a cold server; cache {m1['mamba2_prefix_cache_entries']:.0f} snapshots, "
          f"{m1['mamba2_prefix_cache_bytes'] / 2**20:.1f} MiB; speed-up on the repeated prompt {ta / max(ta2, 1e-6):.1f}x")


# ------------------------------------------------------------------------------------------------

def expect_error(base, name, status, method, path, body=None, raw=None, param=None, headers=None):
    got, j, _ = call(base, method, path, body=body, raw=raw, headers=headers)
    check(got == status, f"{name}: status {got}, expected {status}: {j}")
    check(isinstance(j, dict) and isinstance(j.get("error"), dict), f"{name}: no OpenAI error body: {j!r:.200}")
    e = j["error"]
    check(isinstance(e.get("message"), str) and e["message"], f"{name}: empty message")
    check("type" in e and "param" in e and "code" in e, f"{name}: error body lacks type/param/code: {e}")
    if param is not None:
        check(e["param"] == param, f"{name}: param {e['param']!r}, expected {param!r}")
    return e


def raw_exchange(base, data, read=True):
    u = urlparse(base)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s.recv(65536) if read else b""
    except OSError:
        return b""
    finally:
        s.close()


def run_bad_input(args):
    b = args.base
    ok = {"prompt": "Hello", "max_tokens": 4, "temperature": 0}
    cases = [
        ("malformed JSON", 400, "POST", "/v1/completions", None, b'{"prompt": "a",', None),
        ("invalid UTF-8", 400, "POST", "/v1/completions", None, b'{"prompt": "\xff\xfe"}', None),
        ("empty body", 400, "POST", "/v1/completions", None, b"", None),
        ("array body", 400, "POST", "/v1/completions", [1, 2], None, None),
        ("missing prompt", 400, "POST", "/v1/completions", {"max_tokens": 3}, None, "prompt"),
        ("prompt wrong type", 400, "POST", "/v1/completions", {"prompt": {"a": 1}}, None, "prompt"),
        ("two prompts", 400, "POST", "/v1/completions", {"prompt": ["a", "b"]}, None, "prompt"),
        ("empty prompt", 400, "POST", "/v1/completions", {"prompt": ""}, None, "prompt"),
        ("token id out of range", 400, "POST", "/v1/completions", {"prompt": [1, 99999999]}, None, "prompt"),
        ("prompt over the limit", 400, "POST", "/v1/completions", {"prompt": list(range(1, 200))}, None, "prompt"),
        ("max_tokens 0", 400, "POST", "/v1/completions", dict(ok, max_tokens=0), None, "max_tokens"),
        ("max_tokens negative", 400, "POST", "/v1/completions", dict(ok, max_tokens=-3), None, "max_tokens"),
        ("max_tokens over the limit", 400, "POST", "/v1/completions", dict(ok, max_tokens=10 ** 7), None, "max_tokens"),
        ("max_tokens string", 400, "POST", "/v1/completions", dict(ok, max_tokens="5"), None, "max_tokens"),
        ("temperature negative", 400, "POST", "/v1/completions", dict(ok, temperature=-0.5), None, "temperature"),
        ("top_p 0", 400, "POST", "/v1/completions", dict(ok, top_p=0), None, "top_p"),
        ("top_p 1.5", 400, "POST", "/v1/completions", dict(ok, top_p=1.5), None, "top_p"),
        ("min_p 2", 400, "POST", "/v1/completions", dict(ok, min_p=2), None, "min_p"),
        ("repetition_penalty 0", 400, "POST", "/v1/completions", dict(ok, repetition_penalty=0), None,
         "repetition_penalty"),
        ("top_k -5", 400, "POST", "/v1/completions", dict(ok, top_k=-5), None, "top_k"),
        ("stop wrong type", 400, "POST", "/v1/completions", dict(ok, stop=5), None, "stop"),
        ("n 2", 400, "POST", "/v1/completions", dict(ok, n=2), None, "n"),
        ("best_of", 400, "POST", "/v1/completions", dict(ok, best_of=3), None, "best_of"),
        ("echo", 400, "POST", "/v1/completions", dict(ok, echo=True), None, "echo"),
        ("suffix", 400, "POST", "/v1/completions", dict(ok, suffix="!"), None, "suffix"),
        ("logit_bias", 400, "POST", "/v1/completions", dict(ok, logit_bias={"50": 100}), None, "logit_bias"),
        ("logprobs bool", 400, "POST", "/v1/completions", dict(ok, logprobs=True), None, "logprobs"),
        ("logprobs 100", 400, "POST", "/v1/completions", dict(ok, logprobs=100), None, "logprobs"),
        ("stream string", 400, "POST", "/v1/completions", dict(ok, stream="yes"), None, "stream"),
        ("chat without template", 400, "POST", "/v1/chat/completions",
         {"messages": [{"role": "user", "content": "hi"}]}, None, "messages"),
        ("chat malformed", 400, "POST", "/v1/chat/completions", None, b"{", None),
        ("tokenize without prompt", 400, "POST", "/tokenize", {"text": "x"}, None, "prompt"),
        ("detokenize bad id", 400, "POST", "/detokenize", {"tokens": [1, -1]}, None, "tokens"),
        ("detokenize not a list", 400, "POST", "/detokenize", {"tokens": "1 2"}, None, "tokens"),
        ("unknown route", 404, "GET", "/v1/nothing", None, None, None),
        ("wrong method", 404, "GET", "/v1/completions", None, None, None),
    ]
    for name, status, method, path, body, raw, param in cases:
        expect_error(b, name, status, method, path, body=body, raw=raw, param=param)
    print(f"  {len(cases)} bad requests got their status and an OpenAI-style error body")

    # Harmless unknown fields are ignored.
    r = complete(b, dict(ok, user="someone", model="anything", something_new=[1, 2]))
    check(r["finish_reason"] in ("stop", "length"), "harmless fields broke a request")

    # Garbage on the socket, a truncated body, a header flood: the server shrugs them off.
    raw_exchange(b, b"\x00\x01\x02 not http at all\r\n\r\n")
    raw_exchange(b, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"prompt\": ")
    raw_exchange(b, b"GET /health HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n")
    status, j, _ = call(b, "GET", "/health")
    check(status == 200, "not healthy after malformed connections")

    # A full queue: 1 slot (--max-seqs 1), 1 waiting place (--max-queue 1), a third request -> 429.
    # The long requests outlast the check (--max-tokens-limit is raised for them) and are never read.
    u = urlparse(b)
    long_body = json.dumps({"prompt": "Long", "max_tokens": 200000, "temperature": 0, "ignore_eos": True,
                            "stream": True}).encode()
    socks = []
    for want_running, want_queued in ((1, 0), (1, 1)):
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(long_body)).encode() + b"\r\n\r\n" + long_body)
        socks.append(s)
        deadline = time.time() + 20
        while time.time() < deadline:
            m = metrics(b)
            if m["mamba2_running_sequences"] == want_running and m["mamba2_queue_length"] == want_queued:
                break
            time.sleep(0.05)
        else:
            raise Fail(f"could not fill the slot and the queue: {m}")
    e = expect_error(b, "queue full", 429, "POST", "/v1/completions", body=ok)
    print(f"  a full queue answered 429: {e['message']}")
    for s in socks:
        s.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        m = metrics(b)
        if m["mamba2_running_sequences"] == 0 and m["mamba2_queue_length"] == 0:
            break
        time.sleep(0.2)
    else:
        raise Fail(f"the disconnected requests were not dropped: {m}")

    # Still serving, and counting what happened.
    r = complete(b, ok)
    check(r["usage"]["completion_tokens"] >= 1, "no tokens after the bad inputs")
    r = complete(b, dict(ok, stream=True))
    m = metrics(b)
    check(m.get('mamba2_requests_total{endpoint="/v1/completions",status="400"}', 0) >= 25, "400s not counted")
    check(m.get('mamba2_requests_total{endpoint="/v1/completions",status="429"}', 0) == 1, "429 not counted")
    print("  still serving afterwards; /metrics counted the errors")


# ------------------------------------------------------------------------------------------------

def run_auth(args):
    b, key = args.base, args.key
    good = {"Authorization": f"Bearer {key}"}
    status, j, _ = call(b, "GET", "/health")
    check(status == 200, f"/health without a key: {status}")
    for method, path, body in (("GET", "/v1/models", None), ("GET", "/metrics", None),
                               ("POST", "/v1/completions", {"prompt": "a", "max_tokens": 2}),
                               ("POST", "/tokenize", {"prompt": "a"}), ("POST", "/detokenize", {"tokens": [1]}),
                               ("GET", "/v1/nothing", None)):
        for name, hdr in (("no key", None), ("wrong key", {"Authorization": f"Bearer {key}x"}),
                          ("no scheme", {"Authorization": key}), ("empty", {"Authorization": "Bearer "}),
                          ("prefix of the key", {"Authorization": f"Bearer {key[:-1]}"})):
            e = expect_error(b, f"{method} {path} {name}", 401, method, path, body=body, headers=hdr)
            check(e["code"] == "invalid_api_key", f"{path} {name}: code {e['code']}")
    status, j, _ = call(b, "GET", "/v1/models", headers=good)
    check(status == 200 and j["data"][0]["object"] == "model", f"/v1/models with the key: {status} {j}")
    status, j, _ = call(b, "POST", "/tokenize", {"prompt": "a"}, headers=good)
    check(status == 200 and j["tokens"], f"/tokenize with the key: {status}")
    r = complete(b, {"prompt": "Hello", "max_tokens": 3, "temperature": 0}, headers=good)
    check(r["usage"]["completion_tokens"] >= 1, "completion with the key produced nothing")
    r = complete(b, {"prompt": "Hello", "max_tokens": 3, "temperature": 0, "stream": True}, headers=good)
    m = metrics(b, good)
    check(m.get('mamba2_requests_total{endpoint="/v1/completions",status="401"}', 0) == 5, "401s not counted")
    print("  /health open; every other route 401 without the right Bearer key and 200 with it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check", choices=["concurrency", "prefix-cache", "bad-input", "auth"])
    ap.add_argument("--base", required=True)
    ap.add_argument("--cold-base")
    ap.add_argument("--alone-base")
    ap.add_argument("--key")
    args = ap.parse_args()
    try:
        {"concurrency": run_concurrency, "prefix-cache": run_prefix_cache, "bad-input": run_bad_input,
         "auth": run_auth}[args.check](args)
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    print(f"{args.check}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
