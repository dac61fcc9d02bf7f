#!/usr/bin/env python3
"""Peer client for the pricegrid benchmark: the "classic" threaded Python solution.

This is the comparison point for pricegrid's benchmark.  It fetches daily
OHLCV prices from a crypto price server the way the classic tutorial
solution does: every (exchange, symbol, day) task goes into a
``queue.Queue``, N worker threads (``--threads``, default 32) pull tasks
until the queue is empty, and each GETs ``/price/{exchange}/{symbol}/{day}``
with ``requests`` and stores the result in a shared dict under a lock.
Each worker keeps its own ``requests.Session`` (HTTP keep-alive).

Usage::

    python3 benches/peers/classic_client.py --url http://127.0.0.1:PORT \\
        --from 2020-03-01 --to 2020-03-31 [--threads 32] \\
        [--exchanges all|a,b] [--symbols all|x,y] [--output FILE]

How the Rust bench uses it: it starts the test server, runs this script as a
subprocess against it and parses the single JSON line printed on stdout::

    {"peer": "python-requests-queue", "threads": 32, "tasks": N,
     "prices": P, "missing": M, "failed": F, "wall_s": W, "prices_per_s": R}

``tasks == prices + missing + failed`` always holds.  ``wall_s`` runs from
the first task enqueued to the last result stored; the discovery of
exchanges and symbols (``/exchanges``, ``/symbols``) is EXCLUDED.
``prices_per_s`` is ``prices / wall_s``.

"No price" is a 404, or a 200 whose body is ``null`` or empty; it is stored
as ``None`` and counted as missing.  Anything else that is not a well-formed
price (other status, connection error, timeout, bad JSON) is counted as
failed, is not retried, and is left out of the ``--output`` map.  The
``--output`` map has the shape ``exchange -> day -> symbol -> price-or-null``
with price objects ``{"open", "high", "low", "close", "volume"}``.

Exit status: 0 after a run (even with failed tasks: read ``failed``),
3 if ``requests`` is not installed (the bench treats 3 as "skip"),
2 for bad arguments, 1 if discovery fails, the run exceeds ``--max-wall-s``
or the ``--output`` file cannot be written.

Bounded: every request has a 10 s timeout (requests applies it to the
connect and to each socket read), and a watchdog (``--max-wall-s``) ends the
run regardless; worker threads are daemons, so the process always exits.

Standard library + ``requests`` only; Python 3.9+.
"""

import argparse
import datetime
import json
import queue
import sys
import threading
import time
import urllib.parse

try:
    import requests
except ImportError:
    print("classic_client: the 'requests' package is not installed; skipping",
          file=sys.stderr)
    sys.exit(3)

PEER = "python-requests-queue"
TIMEOUT_S = 10.0
PRICE_FIELDS = ("open", "high", "low", "close", "volume")
MAX_ERROR_SAMPLES = 5


def parse_day(text):
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD, got %r" % text)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer, got %r" % text)
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError("expected 1..4096, got %d" % value)
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % text)
    if not value > 0:
        raise argparse.ArgumentTypeError("expected > 0, got %r" % text)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True,
                   help="base URL of the price server, e.g. http://127.0.0.1:8080")
    p.add_argument("--from", dest="start", required=True, type=parse_day,
                   help="first day, YYYY-MM-DD (inclusive)")
    p.add_argument("--to", dest="end", required=True, type=parse_day,
                   help="last day, YYYY-MM-DD (inclusive)")
    p.add_argument("--threads", type=positive_int, default=32,
                   help="worker threads (default 32)")
    p.add_argument("--exchanges", default="all",
                   help="'all' (ask /exchanges) or a comma-separated list")
    p.add_argument("--symbols", default="all",
                   help="'all' (ask /symbols) or a comma-separated list")
    p.add_argument("--output", help="write the full price map as JSON to this file")
    p.add_argument("--max-wall-s", type=positive_float, default=600.0,
                   help="watchdog: give up on the run after this many seconds (default 600)")
    args = p.parse_args(argv)
    if args.start > args.end:
        p.error("--from %s is after --to %s" % (args.start, args.end))
    return args


def discover(session, base, what, spec):
    """Resolve 'all' through GET /{what}; otherwise split the comma list."""
    if spec.strip() != "all":
        names = [n.strip() for n in spec.split(",") if n.strip()]
    else:
        resp = session.get("%s/%s" % (base, what), timeout=TIMEOUT_S)
        resp.raise_for_status()
        names = resp.json()
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("/%s did not answer a JSON list of strings" % what)
    # Keep order, drop duplicates.
    return list(dict.fromkeys(names))


def days_between(start, end):
    day = start
    while day <= end:
        yield day.isoformat()
        day += datetime.timedelta(days=1)


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fetch(session, base, exchange, symbol, day):
    """Return ("price", dict), ("missing", None) or ("failed", reason)."""
    url = "%s/price/%s/%s/%s" % (
        base,
        urllib.parse.quote(exchange, safe=""),
        urllib.parse.quote(symbol, safe=""),
        day,
    )
    try:
        resp = session.get(url, timeout=TIMEOUT_S)
        body = resp.content
    except requests.RequestException as exc:
        return "failed", "%s: %s" % (url, exc.__class__.__name__)
    if resp.status_code == 404:
        return "missing", None
    if resp.status_code != 200:
        return "failed", "%s: HTTP %d" % (url, resp.status_code)
    if not body.strip():
        return "missing", None
    try:
        data = json.loads(body)
    except ValueError:
        return "failed", "%s: body is not JSON" % url
    if data is None:
        return "missing", None
    if not isinstance(data, dict) or not all(is_number(data.get(f)) for f in PRICE_FIELDS):
        return "failed", "%s: not a price object" % url
    # Reject answers for another task (compared loosely: case-insensitive).
    for key, want in (("exchange", exchange), ("symbol", symbol), ("day", day)):
        got = data.get(key)
        if got is not None and str(got).lower() != want.lower():
            return "failed", "%s: answer is for %s=%r" % (url, key, got)
    return "price", {f: data[f] for f in PRICE_FIELDS}


class Results:
    """The shared map and counters, guarded by one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.prices = {}  # exchange -> day -> symbol -> price dict or None
        self.counts = {"price": 0, "missing": 0, "failed": 0}
        self.errors = []
        self.last_result = None  # perf_counter() of the last result stored

    def store(self, exchange, symbol, day, kind, value):
        with self.lock:
            self.counts[kind] += 1
            if kind == "failed":
                if len(self.errors) < MAX_ERROR_SAMPLES:
                    self.errors.append(value)
            else:
                self.prices.setdefault(exchange, {}).setdefault(day, {})[symbol] = value
            self.last_result = time.perf_counter()


def worker(tasks, base, results):
    session = requests.Session()
    try:
        while True:
            try:
                exchange, symbol, day = tasks.get_nowait()
            except queue.Empty:
                return
            try:
                kind, value = fetch(session, base, exchange, symbol, day)
            except Exception as exc:  # never let a task kill the worker
                kind, value = "failed", "%s/%s/%s: %r" % (exchange, symbol, day, exc)
            results.store(exchange, symbol, day, kind, value)
    finally:
        session.close()


def main(argv=None):
    args = parse_args(argv)
    base = args.url.rstrip("/")

    # Discovery (not timed).
    try:
        with requests.Session() as s:
            exchanges = discover(s, base, "exchanges", args.exchanges)
            symbols = discover(s, base, "symbols", args.symbols)
    except Exception as exc:
        print("classic_client: discovery failed: %s" % exc, file=sys.stderr)
        return 1
    days = list(days_between(args.start, args.end))

    results = Results()
    tasks = queue.Queue()

    # Timed section: first task enqueued .. last result stored.
    t0 = time.perf_counter()
    n_tasks = 0
    for exchange in exchanges:
        for day in days:
            for symbol in symbols:
                tasks.put((exchange, symbol, day))
                n_tasks += 1

    threads = [
        threading.Thread(target=worker, args=(tasks, base, results),
                         name="classic-%d" % i, daemon=True)
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()

    # Join with a watchdog so the script always terminates.
    deadline = t0 + args.max_wall_s
    timed_out = False
    for t in threads:
        remaining = deadline - time.perf_counter()
        t.join(max(remaining, 0.0))
        if t.is_alive():
            timed_out = True
            break

    with results.lock:
        counts = dict(results.counts)
        errors = list(results.errors)
        last = results.last_result
        price_map = json.loads(json.dumps(results.prices))  # deep snapshot
    if timed_out:
        # Tasks never answered (queued or in flight) count as failed.
        unanswered = n_tasks - sum(counts.values())
        counts["failed"] += unanswered
        errors.append("watchdog: %d tasks unanswered after %.0f s"
                      % (unanswered, args.max_wall_s))
        last = time.perf_counter()

    wall_s = (last - t0) if (n_tasks and last is not None) else 0.0
    summary = {
        "peer": PEER,
        "threads": args.threads,
        "tasks": n_tasks,
        "prices": counts["price"],
        "missing": counts["missing"],
        "failed": counts["failed"],
        "wall_s": round(wall_s, 6),
        "prices_per_s": round(counts["price"] / wall_s, 3) if wall_s > 0 else 0.0,
    }

    status = 1 if timed_out else 0
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                json.dump(price_map, f, sort_keys=True, indent=1)
                f.write("\n")
        except OSError as exc:
            print("classic_client: cannot write %s: %s" % (args.output, exc),
                  file=sys.stderr)
            status = 1

    if counts["failed"]:
        print("classic_client: %d task(s) failed; first: %s"
              % (counts["failed"], "; ".join(errors)), file=sys.stderr)
    print(json.dumps(summary))
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
