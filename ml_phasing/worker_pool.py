"""Worker pools that a Ctrl-C stops cleanly.

A terminal's Ctrl-C sends SIGINT to the whole process group: the pool's workers
too. Each worker then raised KeyboardInterrupt in the middle of a task, printed its
own traceback, and could leave the pool's queue lock held, so that shutting the pool
down hung (6 of 26 trials, 20 s to 10 minutes, issue 12). Here workers ignore SIGINT;
the parent alone sees the KeyboardInterrupt, terminates the workers and reports one
line (``run_cli``: "Interrupted", exit 130).
"""

from __future__ import annotations

import multiprocessing
import signal


def _ignore_sigint_then(initializer, initargs):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def fork_pool(nproc: int, initializer=None, initargs=()):
    """A ``multiprocessing`` pool (fork start method: workers inherit the parent's data)
    whose workers ignore SIGINT."""
    ctx = multiprocessing.get_context("fork")
    return ctx.Pool(nproc, initializer=_ignore_sigint_then, initargs=(initializer, initargs))


def ordered(pool, function, items, in_flight: int, poll: float = 0.2):
    """``function(item)`` for each of ``items`` in the pool, results in order, with at most
    ``in_flight`` tasks submitted ahead.

    The items are drawn here, in the calling thread: ``pool.imap`` draws them in its
    task-handler thread, where a slow generator (a start that takes seconds to make)
    delayed a Ctrl-C until it finished. Results are awaited in ``poll``-second steps: a
    plain wait is on a lock that a Ctrl-C does not interrupt, so the KeyboardInterrupt
    came only with the next result (3-6 s later on the engine's starts, measured)."""
    import collections

    pending = collections.deque()
    items = iter(items)
    while True:
        while len(pending) < in_flight:
            try:
                item = next(items)
            except StopIteration:
                break
            pending.append(pool.apply_async(function, (item,)))
        if not pending:
            return
        result = pending.popleft()
        while True:
            try:
                value = result.get(timeout=poll)
                break
            except multiprocessing.TimeoutError:
                continue
        yield value


def close(pool) -> None:
    """Stop the workers now (results still queued are dropped) and reap them."""
    pool.terminate()
    pool.join()
