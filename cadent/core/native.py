"""Real OS-thread primitives that stay real after gevent's monkey patching.

The cache is shared between the gevent loop (receivers, CarbonLink) and the writer, which runs
in a genuine OS thread so blocking disk I/O never stalls the loop. Patched ``threading.Lock``
would be a greenlet lock there, and ``threading.Event``/``Thread`` look their internals up in
the patched module, so everything here comes from the originals gevent saved
(``gevent.monkey.get_original``; without patching these are the plain stdlib objects).
"""

from __future__ import annotations

from typing import Any, Callable

from gevent.monkey import get_original

allocate_lock: Callable[[], Any] = get_original("_thread", "allocate_lock")
get_ident: Callable[[], int] = get_original("_thread", "get_ident")
sleep: Callable[[float], None] = get_original("time", "sleep")


class NativeSignal:
    """An auto-reset event: ``set`` from any thread wakes one ``wait`` in a native thread.

    ``wait`` blocks the OS thread (never call it on the gevent loop); ``set`` never blocks.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already signalled

    def wait(self, timeout: float) -> bool:
        """True if signalled within ``timeout`` seconds (the signal is consumed)."""
        return self._lock.acquire(timeout=max(timeout, 0.0))


class LoopCaller:
    """Runs a callable on the gevent loop of the thread that created this object.

    From that thread the call is immediate; from any other thread it is queued with
    ``loop.run_callback_threadsafe`` (gevent objects such as Events are not thread-safe).
    """

    def __init__(self) -> None:
        import gevent

        self._owner = get_ident()
        self._loop = gevent.get_hub().loop

    def __call__(self, func: Callable[..., Any], *args: Any) -> None:
        if get_ident() == self._owner:
            func(*args)
        else:
            self._loop.run_callback_threadsafe(func, *args)


__all__ = ["LoopCaller", "NativeSignal", "allocate_lock", "get_ident", "sleep"]
