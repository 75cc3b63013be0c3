"""``handwritten serve``: the command that starts the server of ``handwritten.server``.

One Python process prepares images one small step at a time, under one lock (the GIL), so it
keeps about one core busy however many threads it has. With ``--workers N`` (by default one per
core, at most ``MAX_DEFAULT_WORKERS``) N uvicorn processes answer side by side, each with its
own copy of the model and its own listening socket on the same port (``SO_REUSEPORT``): the
kernel spreads new connections over them. (Sharing one socket, as uvicorn's own workers do,
lets whichever process wakes first accept a whole burst of connections, and a client keeps its
connection: one process then did all the work.) The model is loaded (and a Keras model
converted to ONNX, cached) once before they start, so a bad model file is reported at once and
each worker finds the conversion ready. Teach mode (``--collect``) runs in one process: its
Undo takes back the sample that process saved last.
"""

from __future__ import annotations

import json
import os
import socket

from handwritten import paths
from handwritten.errors import HandwrittenError
from handwritten.guards import LOOPBACK_HOSTS, served_hosts

MAX_DEFAULT_WORKERS = 4
MAX_WORKERS = 64
# How the command's settings reach the worker processes that uvicorn starts.
SETTINGS_VARIABLE = "HANDWRITTEN_SERVE_SETTINGS"


def default_workers() -> int:
    """One worker per core this process may run on, at most ``MAX_DEFAULT_WORKERS``; 1 where
    sockets cannot share a port (no ``SO_REUSEPORT``)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def app_settings(args) -> dict:
    """``create_app``'s keyword arguments from the command line, checked."""
    from handwritten.limits import check_number

    if not 0 <= args.port <= 65535:
        raise HandwrittenError(f"--port {args.port}: a port is between 0 and 65535")
    check_number("--max-mb", args.max_mb, 0, 1_000_000, ends="(]")  # a terabyte: any more is a typo
    check_number("--max-megapixels", args.max_megapixels, 0, 1_000_000, ends="(]")
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise HandwrittenError(f"--workers {args.workers}: give a number of processes from 1 to {MAX_WORKERS}")
    if (args.workers or 1) > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise HandwrittenError(f"--workers {args.workers}: this system cannot share a port between processes "
                               "(no SO_REUSEPORT); give --workers 1")
    if args.collect is not None and (args.workers or 1) > 1:
        raise HandwrittenError(f"--workers {args.workers}: Teach mode (--collect) runs in one process; "
                               "leave out --workers or give --workers 1")
    return {"model": str(args.model), "max_bytes": int(args.max_mb * 1e6), "max_pixels": int(args.max_megapixels * 1e6),
            "allowed_hosts": served_hosts(args.host, args.allow_host), "collect": args.collect,
            "min_confidence": args.min_confidence}


def app_from_environment():
    """The application of one worker process, from the settings its parent put in the environment."""
    from handwritten.cli import _import_tensorflow_quietly
    from handwritten.server import create_app

    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    if not settings["model"].lower().endswith(".onnx"):
        _import_tensorflow_quietly()
    return create_app(settings.pop("model"), **settings)


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` side by side (the first one's port when ``port`` is 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    try:
        for _ in range(count):
            # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket made
            # so, and without it each answer waited about 40 ms for the client's delayed ACK.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
    except OSError as exc:
        for sock in out:
            sock.close()
        raise HandwrittenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return out


def serve_worker(options: dict, sock: socket.socket) -> None:
    """One worker process: uvicorn on its own socket, the application from ``app_from_environment``."""
    import uvicorn

    from handwritten.deadline import HeaderDeadline

    config = uvicorn.Config(f"{__name__}:app_from_environment", factory=True, http=HeaderDeadline, **options)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(options: dict, count: int) -> int:
    """Run ``count`` worker processes until SIGTERM or Ctrl-C (passed on to them) or until one of them stops."""
    import multiprocessing
    import multiprocessing.connection
    import signal
    import threading

    from handwritten.server import SHUTDOWN_GRACE_S

    sockets = listening_sockets(options["host"], options["port"], count)
    options = {**options, "port": sockets[0].getsockname()[1]}
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=serve_worker, args=(options, sock), name=f"worker {k + 1}")
                 for k, sock in enumerate(sockets)]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        host = f"[{options['host']}]" if ":" in options["host"] else options["host"]
        print(f"note: serving http://{host}:{options['port']} (press Ctrl-C to stop)", flush=True)
        while not stop.is_set() and all(p.is_alive() for p in processes):
            multiprocessing.connection.wait([p.sentinel for p in processes], timeout=0.5)
        stopped = [p for p in processes if not p.is_alive()]
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes or cancels what runs, then exits
        for process in processes:
            process.join(SHUTDOWN_GRACE_S + 10)
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in sockets:
            sock.close()
    if stop.is_set():
        return 0
    for process in stopped:
        print(f"handwritten serve: error: {process.name} stopped (exit status {process.exitcode}); "
              "the server stopped with it", flush=True)
    return 1


def run_serve(args) -> int:
    import uvicorn

    from handwritten.deadline import HeaderDeadline
    from handwritten.server import KEEP_ALIVE_S, MAX_HEADER_BYTES, SHUTDOWN_GRACE_S, create_app

    settings = app_settings(args)
    workers = 1 if args.collect is not None else args.workers or default_workers()
    app = create_app(settings["model"], **{k: v for k, v in settings.items() if k != "model"})
    print(f"note: {app.state.runtime}; {workers} worker process{'es' if workers > 1 else ''}", flush=True)
    hosts = settings["allowed_hosts"]
    if args.host not in LOOPBACK_HOSTS:
        print(f"note: listening on {args.host}; anyone who can reach it can use the model (there is no login)")
        if hosts != ["*"]:
            print(f"note: answering requests for {', '.join(hosts)} only; add --allow-host NAME for the name clients use")
    options = dict(host=args.host, port=args.port, access_log=not args.quiet, log_level="info",
                   timeout_keep_alive=KEEP_ALIVE_S, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                   timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    if workers == 1:
        uvicorn.run(app, http=HeaderDeadline, **options)
        return 0
    del app  # each worker loads its own
    os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run_workers(options, workers)


def register(sub) -> None:
    from handwritten.server import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

    p = sub.add_parser("serve", help="serve a web page and an HTTP API that recognise characters")
    p.add_argument("model", type=paths.argument, help="model file (.keras, .h5 or .onnx), e.g. demo/model_2.keras from make demo")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="server processes answering requests side by side (default: one per core, at most "
                        f"{MAX_DEFAULT_WORKERS}; 1 with --collect)")
    p.add_argument("--max-mb", type=float, default=DEFAULT_MAX_BYTES / 1e6, help="largest image file accepted, MB (default: %(default)s)")
    p.add_argument(
        "--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, help="largest image accepted, megapixels (default: %(default)s)"
    )
    p.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer requests for this host name (the name clients use to reach the server); repeatable; "
        "'*' answers any (default: the --host address, and 127.0.0.1, localhost and ::1 when listening on loopback)",
    )
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="mark answers whose calibrated probability is below P as unsure (default: %(default)s, "
                        "meaning the model's own, else 0.5)")
    p.add_argument("--quiet", action="store_true", help="do not log each request (default: %(default)s)")
    p.add_argument("--collect", default=None, metavar="DIR", type=paths.argument,
                   help="add a Teach mode that saves your own samples into DIR, one folder per character, for "
                        "'handwritten finetune --data DIR' (default: %(default)s, off)")
    p.set_defaults(run=run_serve)
