"""Where independent pieces of work run: in this process, on N local processes, or on a Ray cluster.

    with make_executor("ray", ray_address="auto") as ex:       # or LocalExecutor(workers=2)
        results = ex.run([Task("a", f, (1,)), Task("b", g, (After("a"),), num_cpus=1, num_gpus=1)],
                         on_done=lambda task, result, seconds: ...)

A `Task` is a picklable function call with the resources it needs (Ray schedules on them; the local pool
runs at most `workers` at once). An argument `After(name)` is replaced by that task's result, which also
orders the two: `run` is a small DAG runner. `on_done` is called in THIS process as each task finishes
(the benchmark records its stage log there, so the log stays the single record whatever the executor).
Ctrl-C cancels every queued and running task. A worker process that dies (killed, out of memory) is
replaced and its task run again, up to `max_retries` times; tasks are pure functions of their arguments
that write their outputs atomically, so a rerun gives the same result.

LocalExecutor(workers=1) runs each task inline, in list order: exactly the sequential program.
"""
from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from core.io import UserError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class After:
    """Placeholder argument: the result of the task with this name (and a dependency on it)."""
    name: str


@dataclass
class Task:
    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def deps(self) -> list[str]:
        return [a.name for a in (*self.args, *self.kwargs.values()) if isinstance(a, After)]

    def bound(self, results: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        sub = lambda a: results[a.name] if isinstance(a, After) else a  # noqa: E731
        return tuple(sub(a) for a in self.args), {k: sub(v) for k, v in self.kwargs.items()}


def _check_graph(tasks: list[Task]) -> None:
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate task names in {names}")
    for t in tasks:
        missing = [d for d in t.deps() if d not in names]
        if missing:
            raise ValueError(f"task {t.name} waits for unknown task(s) {missing}")


class _Executor:
    """The DAG loop shared by both executors; subclasses submit one task and cancel everything."""
    kind = "?"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def release(self) -> None:
        """No more tasks will be submitted: start letting go of workers (close() still waits for them)."""

    def cluster_gpus(self) -> float:
        """GPUs the tasks can ask for (the local executor: none are scheduled)."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        return {"executor": self.kind}

    def run(self, tasks: Iterable[Task], on_done: Callable[[Task, Any, float], None] | None = None,
            known: dict[str, Any] | None = None, on_start: Callable[[Task], None] | None = None) -> dict[str, Any]:
        """Run every task once its After() inputs are done; returns {name: result}.

        known: results of tasks already done (a resumed run): those tasks are skipped, their results used.
        on_start(task) / on_done(task, result, seconds) are called here, in the caller's process;
        seconds is the task's own run time on its worker (not the time it waited in a queue)."""
        tasks = list(tasks)
        _check_graph(tasks)
        results: dict[str, Any] = dict(known or {})
        pending = [t for t in tasks if t.name not in results]
        running: dict[cf.Future, Task] = {}
        attempts: dict[str, int] = {}
        try:
            while pending or running:
                for t in [t for t in pending if all(d in results for d in t.deps())]:
                    if not self._has_room(len(running)):
                        break
                    pending.remove(t)
                    if on_start is not None:
                        on_start(t)
                    running[self._submit(t, results)] = t
                    attempts[t.name] = attempts.get(t.name, 0) + 1
                if not running:
                    raise RuntimeError(f"tasks can never start (a dependency cycle?): {[t.name for t in pending]}")
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    t = running.pop(fut)
                    try:
                        res, seconds = self._result(fut)
                    except _WorkerDied:
                        if attempts[t.name] > self.max_retries:
                            raise RuntimeError(f"task {t.name}: its worker died {attempts[t.name]} times") from None
                        print(f"[retry] {t.name}: its worker died; running it again", file=sys.stderr)
                        pending.insert(0, t)
                        continue
                    results[t.name] = res
                    if on_done is not None:
                        on_done(t, res, seconds)
        except BaseException:  # Ctrl-C, or one task failed: stop the others, keep what was recorded
            self.cancel([*running])
            raise
        return results

    # -- per executor -----------------------------------------------------------------------------
    def _has_room(self, n_running: int) -> bool:
        return True

    def _submit(self, task: Task, results: dict[str, Any]) -> cf.Future:
        raise NotImplementedError

    def _result(self, fut: cf.Future) -> Any:
        return fut.result()

    def cancel(self, futures: list[cf.Future]) -> None:
        for f in futures:
            f.cancel()


class _WorkerDied(Exception):
    pass


def _limit_threads(n: int) -> None:
    """Runs first in each pool worker, before torch/numpy load: the workers share the cores instead of each
    spinning one thread per core (Ray does the same for its tasks through OMP_NUM_THREADS = num_cpus)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Runs on the worker: the task's result and its own wall time."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, round(time.perf_counter() - t0, 2)


class LocalExecutor(_Executor):
    """Tasks on this machine: inline (workers=1) or on `workers` spawned processes (fresh interpreters:
    no inherited PyBullet or torch-thread state). Resources are not checked: one task per worker."""
    kind = "local"

    def __init__(self, workers: int = 1, max_retries: int = 2):
        if workers < 1:
            raise UserError(f"--workers: expected ≥ 1, got {workers}")
        self.workers, self.max_retries = workers, max_retries
        self._pool: cf.ProcessPoolExecutor | None = None

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": self.workers}

    def _has_room(self, n_running: int) -> bool:
        return n_running < self.workers

    def _submit(self, task: Task, results: dict[str, Any]) -> cf.Future:
        args, kwargs = task.bound(results)
        if self.workers == 1:
            fut: cf.Future = cf.Future()
            try:
                fut.set_result(_timed(task.fn, *args, **kwargs))
            except BaseException as e:  # noqa: B036 — re-raised by _result in the run loop
                if isinstance(e, KeyboardInterrupt):
                    raise
                fut.set_exception(e)
            return fut
        if self._pool is None:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=_limit_threads, initargs=(threads,))
        return self._pool.submit(_timed, task.fn, *args, **kwargs)

    def _result(self, fut: cf.Future) -> Any:
        try:
            return fut.result()
        except BrokenProcessPool:
            # a worker was killed: the pool is unusable; drop it (its other tasks fail the same way and are
            # resubmitted too) and start a fresh one on the next submit
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise _WorkerDied from None

    def cancel(self, futures: list[cf.Future]) -> None:
        if self._pool is not None:
            procs = list(getattr(self._pool, "_processes", {}).values())  # no public handle on the workers
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _reachable(address: str, timeout_s: float = 3.0) -> str | None:
    """None if a TCP connection to host:port opens, else why not. 'auto' / no port: left to ray.init."""
    hostport = address.split("://", 1)[-1]
    if address == "auto" or ":" not in hostport:
        return None
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except ValueError:
        return f"expected HOST:PORT or ray://HOST:PORT, got {address!r}"
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"


class RayExecutor(_Executor):
    """Tasks on a Ray cluster: `address=None` starts a private local Ray (num_cpus of this machine, or
    the given number), 'auto' joins the one `ray start` made on this machine, HOST:PORT or ray://HOST:PORT
    a remote one. An unreachable address is a UserError, raised before anything is written.
    Every node must have this code importable (pip install -e . in the cluster setup, docs/cluster.md)
    and see the output and cache folders at the same paths (a shared filesystem).

    A private local Ray starts in the background (≈ 4 s of GCS/raylet start-up, measured) while the caller
    goes on with its own work (imports, the real set); the first submit waits for it. Its owner thread
    stays alive until close(): Ray's processes are tied to the thread that started them (Linux
    PDEATHSIG), so a thread that returned would take them down with it. `release()` starts the shutdown
    (≈ 1.4 s) in that thread while the caller writes its report; close() waits for it."""
    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3):
        try:
            import ray
        except ModuleNotFoundError:
            raise UserError("--executor ray: the ray package is not installed (pip install -r requirements.txt)") from None
        self.ray, self.address, self.max_retries = ray, address, max_retries
        self._owns = False
        self._refs: dict[cf.Future, Any] = {}
        self._remote = ray.remote(_timed)
        self._owner: threading.Thread | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._init_error: BaseException | None = None
        self._ready.set()
        if ray.is_initialized():  # e.g. a test module's shared ray.init
            return
        if address:
            why = _reachable(address)
            if why:
                raise UserError(f"--ray-address {address}: no Ray cluster reachable there ({why})")
        # local workers import this project like the driver does
        root = str(Path(__file__).resolve().parents[1])
        pp = os.environ.get("PYTHONPATH", "")
        if root not in pp.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join([root, pp]) if pp else root
        # tasks on other nodes read the same settings (cache folder, real-set location) as this process
        env = {k: v for k, v in os.environ.items() if k.startswith("SIM2REAL_")}
        kwargs = dict(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                      log_to_driver=True, configure_logging=False,
                      runtime_env={"env_vars": env} if address and env else None)
        self._owns = True
        if address:  # joining a cluster: its errors come now, before anything is written
            self._init(kwargs)
            self._ready_or_raise()
            return
        self._ready.clear()
        self._owner = threading.Thread(target=self._own, args=(kwargs,), name="ray-owner", daemon=True)
        self._owner.start()

    def _init(self, kwargs: dict[str, Any]) -> None:
        try:
            self.ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            self._owns = False
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._init_error = UserError(f"--ray-address {self.address}: could not join a Ray cluster ({why})"
                                         if self.address else f"--executor ray: could not start a local Ray ({why})")

    def _own(self, kwargs: dict[str, Any]) -> None:
        """The owner thread of a private local Ray: start it, then keep it alive until release()/close()."""
        try:
            self._init(kwargs)
        except BaseException as e:  # noqa: B036 — handed to the caller's thread by _ready_or_raise
            self._owns, self._init_error = False, e
        self._ready.set()
        if self._owns:
            self._stop.wait()
            self.ray.shutdown()

    def _ready_or_raise(self) -> None:
        self._ready.wait()
        if self._init_error is not None:
            raise self._init_error

    def cluster_gpus(self) -> float:
        """GPUs the tasks can ask for. A private local Ray has this machine's (asked without waiting for it)."""
        if self._owner is not None and not self._ready.is_set():
            from core.device import cuda_device_count
            return float(cuda_device_count())
        self._ready_or_raise()
        return float(self.ray.cluster_resources().get("GPU", 0))

    def describe(self) -> dict[str, Any]:
        self._ready_or_raise()
        res = self.ray.cluster_resources()
        return {"executor": "ray", "address": self.address or "local",
                "cluster_cpus": res.get("CPU", 0), "cluster_gpus": res.get("GPU", 0)}

    def _submit(self, task: Task, results: dict[str, Any]) -> cf.Future:
        self._ready_or_raise()
        args, kwargs = task.bound(results)
        remote = self._remote.options(
            num_cpus=task.num_cpus, num_gpus=task.num_gpus, max_retries=self.max_retries,
            name=task.name.replace(":", "_"))
        ref = remote.remote(task.fn, *args, **kwargs)
        fut = ref.future()
        self._refs[fut] = ref
        return fut

    def _result(self, fut: cf.Future) -> Any:
        self._refs.pop(fut, None)
        try:
            return fut.result()
        except self.ray.exceptions.RayTaskError as e:  # the task raised: surface the task's own exception
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, BaseException) else e) from None
        except self.ray.exceptions.WorkerCrashedError:  # Ray already retried it max_retries times
            raise RuntimeError(f"a Ray worker died {self.max_retries + 1} times running this task") from None

    def cancel(self, futures: list[cf.Future]) -> None:
        for f in futures:
            ref = self._refs.pop(f, None)
            if ref is not None:
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # already finished / already gone
                    pass

    def release(self) -> None:
        """No more tasks: a private local Ray starts shutting down in its owner thread (close() waits)."""
        if self._owner is not None:
            self._stop.set()

    def close(self) -> None:
        if self._owner is not None:
            self._stop.set()
            self._owner.join()
            self._owner, self._owns = None, False
        elif self._owns:
            self.ray.shutdown()
            self._owns = False


def make_executor(kind: str = "local", workers: int = 1, ray_address: str | None = None,
                  max_retries: int = 3) -> _Executor:
    """The executor the CLI flags ask for (--executor local|ray, --workers N, --ray-address ADDR)."""
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind}: expected one of {', '.join(EXECUTORS)}")
    if kind == "local":
        if ray_address:
            raise UserError("--ray-address needs --executor ray")
        return LocalExecutor(workers, max_retries=max_retries)
    return RayExecutor(ray_address, num_cpus=None, max_retries=max_retries)
