"""drama-view: headless GIFs equal to `agent.imagine`, key handling, a screenshot, and the CLI's error exits."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

os.environ["SDL_VIDEODRIVER"] = "dummy"

import pygame  # noqa: E402

from drama_agent import DramaAgent, DramaConfig, make_env  # noqa: E402
from viewer import record_rollout  # noqa: E402
from viewer.app import ViewerApp  # noqa: E402
from viewer.controls import action_names, human_action  # noqa: E402
from viewer.main import load, main, parse_args  # noqa: E402
from viewer.panels import PANEL_BG, Composer, Layout, heat_map  # noqa: E402
from viewer.record import surface_pixels  # noqa: E402
from viewer.session import Session  # noqa: E402

CFG = DramaConfig.preset("debug")
ALE_18 = [
    "NOOP",
    "FIRE",
    "UP",
    "RIGHT",
    "LEFT",
    "DOWN",
    "UPRIGHT",
    "UPLEFT",
    "DOWNRIGHT",
    "DOWNLEFT",
    "UPFIRE",
    "RIGHTFIRE",
    "LEFTFIRE",
    "DOWNFIRE",
    "UPRIGHTFIRE",
    "UPLEFTFIRE",
    "DOWNRIGHTFIRE",
    "DOWNLEFTFIRE",
]


def catch_agent(decoder_std: float | None) -> DramaAgent:
    """Debug agent on Catch; `decoder_std` re-draws the decoder so that dreams are not flat grey.

    std 1.0 saturates most pixels (about 10 colours a dream, so composed frames fit a GIF palette exactly);
    std 0.3 gives about 1000 colours a dream.
    """
    agent = DramaAgent(CFG, env=make_env("Catch", CFG.env, seed=0), device="cpu")
    if decoder_std is not None:
        torch.manual_seed(1)
        with torch.no_grad():
            for p in agent.world_model.decoder.parameters():
                p.normal_(0.0, decoder_std)
    return agent


def replay(agent: DramaAgent, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The viewer's game, played independently: observations o_0..o_N and the agent's actions a_0..a_{N-1}."""
    env = make_env("Catch", agent.cfg.env, seed=seed)
    obs, _ = env.reset(seed=seed)
    agent.reset()
    observations, actions = [obs], []
    for _ in range(frames):
        actions.append(agent.act(obs))
        obs, *_ = env.step(actions[-1])
        observations.append(obs)
    return np.stack(observations), np.array(actions)


def imagined_segments(agent: DramaAgent, obs: np.ndarray, acts: np.ndarray, horizon: int, seed: int) -> np.ndarray:
    """`agent.imagine` for each dream of a viewer run: re-sync at frames 0, H, 2H, ...; dream k seeded `seed + k`.

    The frame shown at t is the dream of o_{t+1}: a dream starting at t has context (o_j, a_j) for j <= t and
    is driven by a_{t+1}, a_{t+2}, ...
    """
    frames, n_frames, context = [], len(acts), agent.cfg.train.act_context
    for k, start in enumerate(range(0, n_frames, horizon)):
        length = min(horizon, n_frames - start)
        ctx = slice(max(0, start - context + 1), start + 1)
        planned = np.append(acts[start + 1 : start + length], 0)[:length]  # the last action moves no frame
        imag = agent.imagine(obs[ctx][None], acts[ctx][None], horizon=length, actions=planned[None], seed=seed + k)
        frames.append(imag.frames[0])
    return np.concatenate(frames)


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.display.init()
    yield
    pygame.quit()


def make_app(agent: DramaAgent, horizon: int = 16) -> ViewerApp:
    env = make_env("Catch", agent.cfg.env, seed=0)
    composer = Composer(Layout.for_frame(agent.obs_shape[0]), action_names(env, agent.num_actions), "Catch")
    return ViewerApp(Session(agent, env, horizon=horizon, seed=0), composer, fps=0)


def press(app: ViewerApp, key: int, up: bool = False) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYUP if up else pygame.KEYDOWN, key=key))


# ------------------------------------------------------------------------------------------------ 1. GIFs
def test_headless_run_writes_gif_equal_to_imagine(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    n_frames, horizon, seed = 12, 5, 3
    folder = catch_agent(decoder_std=1.0).save_pretrained(tmp_path / "ckpt")
    gif = tmp_path / "out" / "run.gif"
    code = main(
        [
            "--game",
            "Catch",
            "--checkpoint",
            str(folder),
            "--headless",
            "--frames",
            str(n_frames),
            "--record",
            str(gif),
            "--horizon",
            str(horizon),
            "--seed",
            str(seed),
            "--fps",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.index(f"writing {n_frames} frames to {gif}…") < out.index(f"wrote {n_frames} frames to {gif}")

    layout = Layout.for_frame(32)
    composed = iio.imread(gif, index=None)[..., :3]
    assert composed.shape == (n_frames, layout.size[1], layout.size[0], 3)
    agent = DramaAgent.from_pretrained(str(folder), device="cpu")  # same weights and acting RNG as the run
    obs, acts = replay(agent, n_frames, seed)
    dreams = imagined_segments(agent, obs, acts, horizon, seed)
    assert len({tuple(np.unique(d)) for d in dreams}) > 1 and dreams.std() > 50  # dreams vary: a real comparison
    for t, image in enumerate(composed):
        np.testing.assert_array_equal(layout.panel_frame(image, 0), obs[t + 1], err_msg=f"real panel, frame {t}")
        np.testing.assert_array_equal(layout.panel_frame(image, 1), dreams[t], err_msg=f"imagined panel, frame {t}")
        np.testing.assert_array_equal(layout.panel_frame(image, 2), heat_map(obs[t + 1], dreams[t]))


def test_record_rollout_returns_what_it_showed(tmp_path: Path) -> None:
    """Many-colour dreams: the recording's frames equal `imagine`; the GIF holds them up to its 256-colour palette."""
    agent = catch_agent(decoder_std=0.3)
    recording = record_rollout(agent, make_env("Catch", CFG.env, seed=0), tmp_path / "r.gif", frames=9, horizon=4)
    obs, acts = replay(catch_agent(decoder_std=0.3), 9)
    np.testing.assert_array_equal(recording.actions, acts)
    np.testing.assert_array_equal(recording.real, obs[1:])
    np.testing.assert_array_equal(recording.imagined, imagined_segments(agent, obs, acts, 4, 0))
    np.testing.assert_array_equal(np.flatnonzero(recording.synced), [0, 4, 8])
    composed = iio.imread(recording.path, index=None)[..., :3]
    assert composed.shape[0] == 9
    shown = np.stack([recording.layout.panel_frame(image, 1) for image in composed]).astype(int)
    assert np.abs(shown - recording.imagined).mean() < 6.0  # palette quantisation only


# ------------------------------------------------------------------------------------------------ 2. keys
def test_keys_change_the_state_as_documented(display: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(catch_agent(decoder_std=None), horizon=16)
    session = app.session
    assert app.update() and session.frame == 1 and session.view.synced

    press(app, pygame.K_SPACE)  # pause: the frame counter stops
    for _ in range(3):
        app.update()
    assert app.paused and session.frame == 1
    press(app, pygame.K_RIGHT)  # one step while paused
    app.update()
    app.update()
    assert session.frame == 2
    press(app, pygame.K_SPACE)
    app.update()
    assert not app.paused and session.frame == 3 and not session.view.synced and session.view.dream_step == 3

    press(app, pygame.K_r)  # re-sync: a new dream starts from the real context
    app.update()
    assert session.view.synced and session.view.dream_step == 1 and session.view.dream_number == 1

    for _ in range(14):  # + / - change the horizon; the dream then re-syncs every `horizon` frames
        press(app, pygame.K_MINUS)
    press(app, pygame.K_PLUS)
    app.update()
    assert session.horizon == 3
    synced = []
    for _ in range(6):
        app.update()
        synced.append(session.view.synced)
    assert synced == [False, True, False, False, True, False]

    press(app, pygame.K_h)  # human control: the arrow keys choose the actions (Catch: 0 noop, 1 left, 2 right)
    press(app, pygame.K_LEFT)
    app.update()
    assert app.human and session.view.action == 1
    press(app, pygame.K_LEFT, up=True)
    press(app, pygame.K_RIGHT)
    app.update()
    assert session.view.action == 2
    press(app, pygame.K_RIGHT, up=True)
    press(app, pygame.K_SPACE)  # space is fire (none in Catch: noop) in human mode, not pause
    app.update()
    assert session.view.action == 0 and not app.paused
    press(app, pygame.K_SPACE, up=True)
    press(app, pygame.K_h)
    app.update()
    assert not app.human

    real_before, frame_before = session.view.real.copy(), session.frame
    press(app, pygame.K_d)  # dream only: the game stands still, the policy acts inside the world model
    app.update()
    app.update()
    assert session.dream_only and session.view.dream_only and session.frame == frame_before + 2
    np.testing.assert_array_equal(session.view.real, real_before)
    press(app, pygame.K_d)
    app.update()
    assert not session.view.dream_only and session.view.synced

    press(app, pygame.K_g)  # start / stop a GIF
    for _ in range(3):
        app.update()
    press(app, pygame.K_g)
    app.update()
    assert app.saved == [Path("drama-view-1.gif")]
    assert iio.imread(tmp_path / "drama-view-1.gif", index=None).shape[0] == 3

    press(app, pygame.K_q)
    assert app.update() is False and app.quit


def test_dream_only_toggled_while_paused_shows_at_once(display: None) -> None:
    app = make_app(catch_agent(decoder_std=None))
    app.update()
    press(app, pygame.K_SPACE)
    app.update()
    before = surface_pixels(app.screen)
    press(app, pygame.K_d)
    app.update()
    after = surface_pixels(app.screen)
    assert app.paused and app.session.frame == 1 and app.session.dream_only and not app.session.view.dream_only
    changed = np.argwhere((before != after).any(-1))  # (N, 2) rows, columns of changed pixels
    strip_x = app.composer.layout.panel_origin(2)[0] + app.composer.layout.panel
    assert len(changed) > 50 and changed[:, 1].min() < strip_x  # the mode line and the help line both changed
    press(app, pygame.K_SPACE)
    app.update()
    assert app.session.view.dream_only and app.session.frame == 2


def test_help_lists_the_keys_and_cites_no_outside_file(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for key in ("space pause", "→ one step", "r re-sync", "h human control", "d dream only", "g start / stop a GIF"):
        assert key in out
    assert "+ / − horizon" in out and "q or Esc quit" in out
    assert ".md" not in out and "SPEC" not in out and "DESIGN" not in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SDL's fallback without a screen is Linux's")
def test_no_display_without_headless_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--game", "Catch", "--untrained", "--preset", "debug", "--frames", "1"]) == 1
    err = capsys.readouterr().err
    assert "drama-view: no display" in err and "--headless" in err and "Traceback" not in err


def test_headless_records_where_no_screen_and_no_sdl_driver_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    gif = tmp_path / "run.gif"
    args = ["--game", "Catch", "--untrained", "--preset", "debug", "--frames", "3", "--fps", "0", "--record", str(gif)]
    assert main([*args, "--headless"]) == 0
    assert iio.imread(gif, index=None).shape[0] == 3


def test_escape_quits(display: None) -> None:
    app = make_app(catch_agent(decoder_std=None))
    app.update()
    press(app, pygame.K_ESCAPE)
    assert app.update() is False


def test_human_action_follows_action_meanings() -> None:
    assert human_action({"UP", "RIGHT", "FIRE"}, ALE_18) == ALE_18.index("UPRIGHTFIRE")
    assert human_action({"DOWN", "LEFT"}, ALE_18) == ALE_18.index("DOWNLEFT")
    assert human_action({"LEFT", "RIGHT"}, ALE_18) == 0  # opposite directions cancel
    breakout = ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert human_action({"UP", "FIRE"}, breakout) == 1  # no UPFIRE in Breakout: FIRE
    assert human_action({"LEFT", "FIRE"}, breakout) in (1, 3)
    assert human_action(set(), breakout) == 0
    assert human_action({"RIGHT"}, ["action 0", "action 1"]) == 0


# ------------------------------------------------------------------------------------------ 3. screenshot
def test_screenshot_shows_three_distinct_panels(display: None, tmp_path: Path) -> None:
    app = make_app(catch_agent(decoder_std=0.3))
    for _ in range(5):
        app.update()
    path = tmp_path / "viewer.png"
    pygame.image.save(app.screen, str(path))
    image = iio.imread(path)[..., :3]
    layout = app.composer.layout
    assert image.shape == (layout.size[1], layout.size[0], 3)
    panels = [layout.panel_frame(image, i).astype(int) for i in range(3)]
    for panel in panels:
        assert (np.abs(panel - np.array(PANEL_BG)).sum(-1) > 0).mean() > 0.05  # drawn on, not the empty panel
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(panels[i] - panels[j]).mean() > 10.0
    np.testing.assert_array_equal(panels[0], app.session.view.real)


# ------------------------------------------------------------------------------------------- 5. errors
def test_missing_checkpoint_explains_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DRAMA_CHECKPOINTS_DIR", str(tmp_path))
    monkeypatch.delenv("DRAMA_HUB_ORG", raising=False)
    assert main(["--game", "Catch", "--headless"]) == 1
    err = capsys.readouterr().err
    assert "Could not find the Drama checkpoint 'drama-xs-catch'" in err
    assert "drama-train --game Catch --preset xs" in err
    assert "drama-view --game Catch --untrained" in err
    assert "Traceback" not in err


def test_unknown_game_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["--game", "Breakot", "--untrained", "--headless"]) == 2
    err = capsys.readouterr().err
    assert "unknown game 'Breakot'" in err and "Did you mean 'Breakout'" in err
    assert "Traceback" not in err


def test_checkpoint_for_another_game_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = catch_agent(decoder_std=None).save_pretrained(tmp_path / "catch")
    assert main(["--game", "Pong", "--checkpoint", str(folder), "--headless"]) == 2
    err = capsys.readouterr().err
    assert "trained on drama_agent/Catch-v0 (3 actions)" in err and "ALE/Pong-v5 (6 actions)" in err
    assert "Traceback" not in err


def test_default_checkpoint_is_the_first_shipped_of_xs_cpu_s_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAMA_CHECKPOINTS_DIR", str(tmp_path))
    monkeypatch.delenv("DRAMA_HUB_ORG", raising=False)
    agents = {}
    for seed, preset in enumerate(("debug", "s", "cpu", "xs"), start=1):
        cfg = CFG.replace_path("seed", seed)  # distinct weights per folder, same (small) model
        agents[preset] = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
        agents[preset].save_pretrained(tmp_path / f"drama-{preset}-catch")
    args = parse_args(["--game", "Catch", "--headless", "--device", "cpu"])
    for preset in ("xs", "cpu", "s", "debug"):
        agent, _, title = load(args)
        assert title == f"Catch   drama-{preset}-catch"
        expected = agents[preset].world_model.state_dict()
        for name, tensor in agent.world_model.state_dict().items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
        shutil.rmtree(tmp_path / f"drama-{preset}-catch")
