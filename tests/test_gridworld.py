"""The grid world (docs/algorithm.md §Long-sequence test): rules, tokens, error, token models, benchmark pipeline."""

import json

import gridworld
import numpy as np
import pytest
import torch
from gridworld_task.env import (
    ACTION_OFFSET,
    AGENT,
    BORDER,
    BOS,
    FLOOR,
    FRAME_LEN,
    GOAL,
    WALL,
    frame_cells,
    generate,
    next_token_pairs,
    step,
    tokenize,
)
from gridworld_task.metrics import frame_faults, grid_error, oracle_cells, valid_frames


@pytest.fixture(scope="module")
def seqs():
    return generate(256, 64, np.random.default_rng(0))


def test_walls_fixed_and_one_agent_one_goal(seqs):
    assert seqs.cells.shape == (256, 64, 25)
    assert (seqs.cells[..., BORDER] == WALL).all()
    interior = seqs.cells[..., ~BORDER]
    assert ((interior == AGENT).sum(-1) == 1).all()
    assert ((interior == GOAL).sum(-1) == 1).all()
    assert ((interior == FLOOR).sum(-1) == 7).all()
    assert (seqs.cells.reshape(-1, 25)[np.arange(256 * 64), seqs.agent.reshape(-1)] == AGENT).all()


def test_actions_move_agent_unless_wall_blocks():
    agent = np.array([12, 12, 12, 12, 12, 6, 6, 6, 6, 18, 18])  # centre (2,2), corner (1,1), corner (3,3)
    action = np.array([0, 1, 2, 3, 4, 0, 2, 1, 3, 1, 3])
    assert step(agent, action).tolist() == [7, 17, 11, 13, 12, 6, 6, 11, 7, 18, 18]


def test_transitions_follow_the_rules(seqs):
    moved = step(seqs.agent[:, :-1], seqs.actions[:, :-1])
    reached = moved == seqs.goal[:, :-1]
    np.testing.assert_array_equal(reached, seqs.redrawn[:, 1:])
    kept = ~reached
    np.testing.assert_array_equal(seqs.agent[:, 1:][kept], moved[kept])
    np.testing.assert_array_equal(seqs.goal[:, 1:][kept], seqs.goal[:, :-1][kept])
    assert seqs.redrawn[:, 0].all()
    # goals are reached: 256 * 63 transitions, about 5 % redraw; the redrawn goal moves in 7/8 of cases
    assert 0.03 < reached.mean() < 0.08
    assert (seqs.goal[:, 1:][reached] != seqs.goal[:, :-1][reached]).mean() > 0.8


def test_generator_is_seeded():
    a = generate(4, 8, np.random.default_rng(3))
    b = generate(4, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(a.cells, b.cells)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_tokenisation_layout(seqs):
    tokens = tokenize(seqs)
    assert tokens.shape == (256, 64 * FRAME_LEN) and tokens.dtype == torch.int64
    assert torch.equal(tokens[:, 25::FRAME_LEN], torch.from_numpy(seqs.actions) + ACTION_OFFSET)
    assert torch.equal(frame_cells(tokens), torch.from_numpy(seqs.cells))
    inputs, targets = next_token_pairs(tokens[:, :208])
    assert inputs.shape == targets.shape == (256, 208)
    assert (inputs[:, 0] == BOS).all() and torch.equal(inputs[:, 1:], targets[:, :-1])


def test_perfect_prediction_scores_zero(seqs):
    err = grid_error(torch.from_numpy(seqs.cells), seqs)
    assert err.geometric == 0.0 and err.logic == 0.0 and err.error == 0.0


def _pick_unredrawn(seqs):
    b, t = np.argwhere(~seqs.redrawn[:, 1:])[0]
    return int(b), int(t) + 1


def test_faulty_frames_are_scored_as_defined(seqs):
    seqs = type(seqs)(**{k: v[:8, :8] for k, v in vars(seqs).items()})
    b, t = _pick_unredrawn(seqs)
    n_frames, n_logic = 8 * 8, 8 * 7
    truth = torch.from_numpy(seqs.cells)

    wall_to_floor = truth.clone()
    wall_to_floor[b, t, 0] = FLOOR
    geo, logic = frame_faults(wall_to_floor, seqs)
    assert geo.sum() == 1 and geo[b, t] and logic.sum() == 1 and logic[b, t - 1]  # invalid -> logic fault too
    assert grid_error(wall_to_floor, seqs).error == pytest.approx(0.5 * (1 / n_frames + 1 / n_logic))

    moved_wrongly = truth.clone()
    agent = int(seqs.agent[b, t])
    other = next(c for c in range(25) if not BORDER[c] and truth[b, t, c] == FLOOR)
    moved_wrongly[b, t, agent], moved_wrongly[b, t, other] = FLOOR, AGENT
    geo, logic = frame_faults(moved_wrongly, seqs)
    assert geo.sum() == 0 and logic.sum() == 1 and logic[b, t - 1]
    err = grid_error(moved_wrongly, seqs)
    assert err.geometric == 0.0 and err.logic == pytest.approx(1 / n_logic)

    two_agents = truth.clone()
    two_agents[b, t, other] = AGENT
    geo, logic = frame_faults(two_agents, seqs)
    assert geo.sum() == 1 and logic.sum() == 1 and geo[b, t] and logic[b, t - 1]

    first_frame_moved = truth.clone()
    first_frame_moved[b, 0] = moved_wrongly[b, t]  # a valid frame, wrong positions: first frames have no logic check
    assert grid_error(first_frame_moved, seqs).error == 0.0


def test_redrawn_frames_checked_for_validity_only(seqs):
    b, t = np.argwhere(seqs.redrawn[:, 1:])[0]
    t = int(t) + 1
    pred = torch.from_numpy(seqs.cells).clone()
    pred[b, t] = torch.from_numpy(seqs.cells[b, t][::-1].copy())  # mirrored board: valid, positions differ
    assert valid_frames(pred[b, t]) and not torch.equal(pred[b, t], torch.from_numpy(seqs.cells[b, t]))
    assert grid_error(pred, seqs).error == 0.0
    pred[b, t, 12] = WALL if pred[b, t, 12] == FLOOR else FLOOR
    geo, logic = frame_faults(pred, seqs)
    assert geo.sum() == 1 and logic.sum() == 1 and logic[b, t - 1]


def test_oracle_floor(seqs):
    oracle = oracle_cells(seqs)
    redrawn = torch.from_numpy(seqs.redrawn)
    assert torch.equal(oracle[~redrawn], torch.from_numpy(seqs.cells)[~redrawn])
    # a redrawn frame is predicted valid only when the agent and goal sit in the last two interior cells,
    # in the order agent, goal (the argmax tie goes to the lower token): 1 of the 72 ordered pairs
    valid = valid_frames(oracle)[redrawn]
    correct = (torch.from_numpy(seqs.agent) == 17) & (torch.from_numpy(seqs.goal) == 18)
    assert torch.equal(valid, correct[redrawn])


@pytest.mark.parametrize("d_model", [24, 48])  # the benchmark's quick and full widths
def test_token_models_have_matched_parameter_counts(d_model):
    from gridworld_task.model import BACKBONES, GridTokenModel, matched_configs

    from drama_agent.checks import count_parameters

    configs = matched_configs(gridworld.base_config(d_model, 2))
    counts = {name: count_parameters(GridTokenModel(cfg)) for name, cfg in configs.items()}
    assert set(counts) == set(BACKBONES)
    assert max(counts.values()) <= 1.10 * min(counts.values()), counts


def test_token_model_is_causal():
    from gridworld_task.model import GridTokenModel, matched_configs

    torch.manual_seed(0)
    for cfg in matched_configs(gridworld.base_config(24, 2)).values():
        model = GridTokenModel(cfg)
        tokens = torch.randint(0, 9, (2, 52))
        changed = tokens.clone()
        changed[:, 30:] = (changed[:, 30:] + 1) % 9
        torch.testing.assert_close(model(tokens)[:, :30], model(changed)[:, :30], rtol=1e-5, atol=1e-5)


def test_quick_benchmark_writes_every_backbone_and_length(tmp_path):
    result = gridworld.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "gridworld.json").read_text())
    table = [line for line in (tmp_path / "gridworld.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + 8  # header, rule, a row per backbone and length
    rows = {(r["backbone"], r["seq_len"]): r for r in data["rows"]}
    assert set(rows) == {(b, n) for b in ("mamba2", "mamba", "gru", "transformer") for n in (52, 208)}
    for row in rows.values():
        assert 0.0 <= row["geometric"] <= 1.0 and 0.0 <= row["logic"] <= 1.0
        assert row["error_mean"] == pytest.approx(0.5 * (row["geometric"] + row["logic"]))
        assert row["ms_per_step"] > 0 and row["activation_mib"] > 0 and np.isfinite(row["final_loss"])
    assert rows[("mamba2", 208)]["ms_ratio_to_mamba2"] == 1.0
    assert 0.0 < data["oracle"]["8"]["error"] < 0.2
    assert len(result["runs"]) == 8


def test_runs_of_single_backbones_merge_into_one_table(tmp_path):
    for backbone in ("mamba2", "gru"):
        gridworld.main(["--quick", "--backbones", backbone, "--frames", "2", "--out", str(tmp_path / backbone)])
    merged = gridworld.main(
        ["--merge", str(tmp_path / "mamba2"), str(tmp_path / "gru"), "--out", str(tmp_path / "all")]
    )
    rows = {(r["backbone"], r["seq_len"]): r for r in merged["rows"]}
    assert set(rows) == {("mamba2", 52), ("gru", 52)}
    gru = rows[("gru", 52)]
    assert gru["ms_ratio_to_mamba2"] == pytest.approx(gru["ms_per_step"] / rows[("mamba2", 52)]["ms_per_step"])
    assert len(merged["runs"]) == 2 and (tmp_path / "all" / "gridworld.md").is_file()
