"""Real signals to real drama-train processes: a stop at any point resumes exactly, and ends in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from drama_agent import DramaAgent, make_env
from drama_agent.metrics import read_metrics
from drama_agent.serialization import flatten_state, load_state

STEPS = 75
ARGS = [
    "--game", "Catch", "--preset", "debug", "--steps", str(STEPS), "--train.warmup_steps", "40",
    "--train.checkpoint_every", "10000", "--eval-episodes", "0", "--no-progress", "--log-every", "1",
]  # fmt: skip

# Runs drama-train in this process. SIGNAL_AT="step:section:SIGNAME" sends that signal to the process itself
# when the section of Trainer.step (acting, env, world_model, imagination, actor_critic) ends at that env step,
# through the trainer's public `timer` hook; SIGNAL_IN_SAVE sends it again while the state is being saved;
# SIGNAL_IN="import" / "evaluate" sends it while torch is imported / when the evaluation starts. Every
# acting section prints its env step, so that the parent can also signal from outside.
SCRIPT = textwrap.dedent("""
    import contextlib, os, signal, sys
    from drama_agent.cli import train

    def send(name):
        os.kill(os.getpid(), getattr(signal, name))

    where = os.environ.get("SIGNAL_IN", "")
    if where == "import":
        class SignalOnTorchImport:
            def find_spec(self, name, path=None, target=None):
                if name == "torch":
                    send(os.environ["SIGNAL_NAME"])
                return None
        sys.meta_path.insert(0, SignalOnTorchImport())
    else:
        import drama_agent.agent, drama_agent.trainer, drama_agent.training_state, torch
        torch.set_num_threads(1)
        step, section, name = (os.environ.get("SIGNAL_AT") or "-1:-:-").split(":")

        @contextlib.contextmanager
        def timer(trainer, part):
            if part == "acting":
                print(trainer.env_steps, flush=True)
            yield
            if trainer.env_steps == int(step) and part == section:
                send(name)

        init = drama_agent.trainer.Trainer.__init__
        def init_with_timer(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.timer = lambda part: timer(self, part)
        drama_agent.trainer.Trainer.__init__ = init_with_timer
        if os.environ.get("SIGNAL_IN_SAVE"):
            save = drama_agent.training_state.save_state
            def save_with_signal(*args, **kwargs):
                send(os.environ["SIGNAL_IN_SAVE"])
                save(*args, **kwargs)
            drama_agent.training_state.save_state = save_with_signal
        if where == "evaluate":
            evaluate = drama_agent.agent.DramaAgent.evaluate
            def evaluate_with_signal(self, *args, **kwargs):
                send(os.environ["SIGNAL_NAME"])
                return evaluate(self, *args, **kwargs)
            drama_agent.agent.DramaAgent.evaluate = evaluate_with_signal
    sys.exit(train.main(sys.argv[1:]))
""")


def start(args: list[str], **signals: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **signals}
    cmd = [sys.executable, "-c", SCRIPT, *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args: list[str], **signals: str) -> tuple[int, str]:
    proc = start(args, **signals)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def saved_step(run_dir) -> int:
    return load_state(run_dir / "state.safetensors")["counters"]["env_steps"]


def assert_stopped(code: int, err: str, expected_code: int, name: str, step: int, run_dir) -> None:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert lines[-1] == (
        f"drama-train: stopped by {name} at step {step}; training state saved to {run_dir}; "
        f"continue with: drama-train --resume {run_dir}"
    ), err
    assert "Traceback" not in err
    assert saved_step(run_dir) == step


@pytest.mark.slow
def test_stops_by_signal_at_any_point_resume_bit_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    code, err = run([*ARGS, "--run-dir", str(straight)])
    assert code == 0, err

    # SIGINT between the world-model and the actor-critic update: the step finishes, then the state is saved.
    code, err = run([*ARGS, "--run-dir", str(split)], SIGNAL_AT="45:world_model:SIGINT")
    assert_stopped(code, err, 130, "SIGINT", 45, split)
    # SIGTERM in the middle of the imagination.
    code, err = run(["--resume", str(split), *ARGS[-5:]], SIGNAL_AT="52:imagination:SIGTERM")
    assert_stopped(code, err, 143, "SIGTERM", 52, split)
    # SIGINT right after the env step of step 58 (the count is still 57: the transition is not stored yet), and
    # another SIGINT during the save.
    code, err = run(["--resume", str(split), *ARGS[-5:]], SIGNAL_AT="57:env:SIGINT", SIGNAL_IN_SAVE="SIGINT")
    assert_stopped(code, err, 130, "SIGINT", 58, split)
    # SIGTERM from outside, whenever the process has passed step 63.
    proc = start(["--resume", str(split), *ARGS[-5:]])
    for line in proc.stdout:
        if line.strip().isdigit() and int(line) >= 63:
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    stopped_at = saved_step(split)
    assert 63 <= stopped_at < STEPS
    assert_stopped(proc.returncode, err, 143, "SIGTERM", stopped_at, split)
    code, err = run(["--resume", str(split), *ARGS[-5:]])
    assert code == 0, err

    a, b = load_state(straight / "state.safetensors"), load_state(split / "state.safetensors")
    tensors_a, skeleton_a = flatten_state(a)
    tensors_b, skeleton_b = flatten_state(b)
    assert skeleton_a == skeleton_b  # counters, configs, RNG and env states, ...
    assert a["counters"]["env_steps"] == STEPS and a["counters"]["updates"] >= STEPS - 41  # 34 or 35 updates
    assert len(tensors_a) > 250 and tensors_a.keys() == tensors_b.keys()
    for key in tensors_a:
        x, y = tensors_a[key], tensors_b[key]
        assert x.dtype == y.dtype and x.shape == y.shape
        diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
        assert diff == 0.0 and torch.equal(x, y), key
    assert read_metrics(straight) == read_metrics(split)


@pytest.mark.parametrize(("where", "name", "code"), [("import", "SIGINT", 130), ("evaluate", "SIGTERM", 143)])
def test_a_signal_outside_training_ends_with_one_line(tmp_path, where, name, code):
    run_dir = tmp_path / "run"
    args = [*ARGS[:-5], "--steps", "3", "--eval-episodes", "2", "--no-progress", "--run-dir", str(run_dir)]
    returncode, err = run(args, SIGNAL_IN=where, SIGNAL_NAME=name)
    assert returncode == code
    hint = f"; continue with: drama-train --resume {run_dir}" if where == "evaluate" else ""
    assert err.strip().splitlines()[-1] == f"drama-train: stopped by {name}{hint}" and "Traceback" not in err
    assert (run_dir / "state.safetensors").is_file() == (where == "evaluate")


# drama-eval in this process, sending itself SIGTERM when the evaluation has finished STOP_AFTER episodes.
EVAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    import drama_agent.agent
    from drama_agent.cli import evaluate

    torch.set_num_threads(1)
    stop_after = int(os.environ["STOP_AFTER"])
    original = drama_agent.agent.DramaAgent.evaluate
    def evaluate_with_signal(self, *args, on_episode, **kwargs):
        finished = []
        def counted(score, length):
            on_episode(score, length)
            finished.append(score)
            if len(finished) == stop_after:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, on_episode=counted, **kwargs)
    drama_agent.agent.DramaAgent.evaluate = evaluate_with_signal
    sys.exit(evaluate.main(sys.argv[1:]))
""")


def test_drama_eval_stopped_by_sigterm_reports_and_writes_the_finished_episodes(tmp_path):
    out = tmp_path / "eval.json"
    args = ["drama-debug-catch", "--episodes", "6", "--seed", "7", "--no-progress", "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STOP_AFTER": "2"}
    proc = subprocess.run([sys.executable, "-c", EVAL_SCRIPT, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "drama-eval: stopped by SIGTERM" and "Traceback" not in proc.stderr
    partial = json.loads(out.read_text())
    assert partial["interrupted"] is True and partial["episodes"] == 2 and partial["episodes_asked"] == 6
    assert partial["protocol"] == "mean return of 2 greedy episodes (interrupted after 2 of 6)"
    assert f"({partial['protocol']})" in proc.stdout
    # The two episodes are the first two of the uninterrupted evaluation.
    agent = DramaAgent.from_pretrained("drama-debug-catch", device="cpu")
    full = agent.evaluate(make_env(agent.env_id, agent.cfg.env, seed=7), n_episodes=6)
    assert partial["returns"] == full["returns"][:2] and partial["lengths"] == full["lengths"][:2]
    assert partial["mean"] == pytest.approx(sum(full["returns"][:2]) / 2, abs=1e-12)
