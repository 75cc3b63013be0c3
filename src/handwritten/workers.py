"""Where the server's work runs: images decoded and framed by a few threads, the model in one.

Both use daemon threads fed by a queue, not the event loop and not an executor that the
interpreter waits for at exit: a request that gives up on its work (it took too long, or the
server is stopping) leaves nothing that keeps the process alive, and work that has not started
when its request gave up is skipped.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading

MAX_BATCH = 64  # images per model call; more queued requests wait for the next call


class Busy(Exception):
    """More images are waiting to be prepared than the server takes on."""


class ImageWorkers:
    """A few threads that decode and frame people's images, each job at most once, in arrival order.

    As many threads as cores, 2 to 8 unless ``threads`` says: the work is numpy and Pillow,
    which keep a core busy each, and more threads would only make every request slower. At most ``max_waiting``
    jobs wait; beyond that :meth:`submit` raises :class:`Busy` at once rather than letting a
    flood of uploads queue up behind each other.
    """

    def __init__(self, threads: int | None = None, max_waiting: int = 64):
        self.threads = threads or max(2, min(8, os.cpu_count() or 1))
        self.max_waiting = max_waiting
        self.jobs: queue.Queue = queue.Queue()
        for k in range(self.threads):
            threading.Thread(target=self._run, name=f"handwritten-images-{k}", daemon=True).start()

    def submit(self, fn, *args, **kwargs) -> concurrent.futures.Future:
        """A future for ``fn(*args, **kwargs)``; cancelling it before it starts skips the job."""
        if self.jobs.qsize() >= self.max_waiting:
            raise Busy(f"images waiting to be read: {self.jobs.qsize()} (at most {self.max_waiting})")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((fn, args, kwargs, future))
        return future

    def _run(self) -> None:
        while True:
            fn, args, kwargs, future = self.jobs.get()
            if not future.set_running_or_notify_cancel():
                continue  # its request has already been answered
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the request, which answers with it
                future.set_exception(exc)


class ModelWorker:
    """Runs every single-character model call in one thread, batching the images that wait together.

    Images arrive already framed (28x28), so the costly part, decoding and framing a person's
    image, runs in parallel in :class:`ImageWorkers` and a large photo delays only its own
    answer. The model call that remains costs about the same for one image as for dozens, so
    whatever arrived while the previous call ran goes into the next: the batch grows with the
    load by itself, without a timer.
    """

    def __init__(self, recognizer, max_batch: int = MAX_BATCH):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="handwritten-model", daemon=True)
        self.thread.start()

    def submit(self, framed) -> concurrent.futures.Future:
        """A future for the class probabilities of one framed uint8 28x28 image."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((framed, future))
        return future

    def _run(self) -> None:
        import numpy as np

        while True:
            batch = [self.jobs.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            # A request that timed out has cancelled its future; it is not worth a model call.
            batch = [(x, future) for x, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                probs = self.recognizer.predict_arrays(np.stack([x for x, _ in batch]))
            except Exception as exc:  # handed to every waiting request, which answers with it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), p in zip(batch, probs):
                future.set_result(p)
