"""Optimizers, schedules and clipping against their published formulas, written independently in
``reference_training.py``; resume bit for bit for every optimizer, schedule and batch mode."""

import json
import math

import numpy as np
import pytest
from conftest import targets_for
from reference_training import plain_train

from nncli import Network, train
from nncli.config import load_config
from nncli.errors import ConfigError, NncliError
from nncli.optim.batches import BATCH_MODES
from nncli.optim.clipping import clip_factor
from nncli.optim.optimizers import OPTIMIZERS, Nesterov, UpdatePart
from nncli.optim.schedules import SCHEDULES, checked_schedule
from nncli.training.loop import Trainer


def problem(m=30, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, 4)), targets_for("softmax", rng, m, k)


@pytest.mark.parametrize("steps", [1, 50])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_each_optimizer_takes_the_steps_of_its_published_formula(optimizer, steps):
    X, Y = problem()
    mine, theirs = (Network([4, 6, 3], activation="tanh", seed=3) for _ in range(2))
    settings = dict(alpha=0.05, lambda_=0.4, beta=0.85, batch="batch", epochs=steps, seed=0)
    settings.update(optimizer=optimizer, beta2=0.99, epsilon=1e-7)
    history = train(mine, X, Y, **settings, engine="numpy")
    costs = plain_train(theirs, X, Y, **settings)
    np.testing.assert_allclose(mine.theta, theirs.theta, rtol=0, atol=1e-12)
    assert [r.train_cost for r in history] == pytest.approx(costs, rel=1e-12)
    assert not np.array_equal(mine.theta, Network([4, 6, 3], activation="tanh", seed=3).theta)


def test_nesterov_takes_scikit_learns_steps_with_its_learning_rate_alpha_times_one_minus_beta():
    """scikit-learn's Nesterov (undampened velocity v := μ v − η D, Θ := Θ + μ v − η D) takes our steps with
    μ = β and η = α (1 − β)."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    alpha, beta = 0.1, 0.8
    rng = np.random.default_rng(4)
    theta = rng.normal(size=12)
    theirs = [theta.copy()]
    sgd = optimizers.SGDOptimizer(theirs, learning_rate_init=alpha * (1 - beta), momentum=beta, nesterov=True)
    ours = Nesterov(12, np.float64, beta)
    mine = theta.copy()
    for _ in range(50):
        D = rng.normal(size=12)
        sgd.update_params(theirs, [D])
        part = UpdatePart(mine, (1 - beta) * D, ours.state, 12, np.empty(12))  # G = κD, κ = 1 − β
        ours.begin_step()
        ours.update(part, alpha, decay=0.0)
    np.testing.assert_allclose(mine, theirs[0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    ("spec", "formula"),
    [
        (None, lambda e: 0.2),
        ({"type": "step", "gamma": 0.5, "every": 3}, lambda e: 0.2 * 0.5 ** (e // 3)),
        ({"type": "exponential", "gamma": 0.9}, lambda e: 0.2 * 0.9**e),
        (
            {"type": "cosine", "warmup": 2, "floor": 0.01},
            lambda e: (
                0.2 * (e + 1) / 2 if e < 2 else 0.01 + 0.5 * 0.19 * (1 + math.cos(math.pi * (e - 2) / 8))
            ),
        ),
        ({"type": "invscaling", "power": 0.25}, lambda e: 0.2 / (30 * e + 1) ** 0.25),
    ],
)
def test_schedules_give_the_alpha_of_their_formulas(spec, formula):
    schedule = checked_schedule(spec, 0.2, rows=30)
    schedule.epochs = 10
    for epoch in (0, 1, 2, 3, 5, 9):
        assert schedule.alpha(epoch) == pytest.approx(formula(epoch), rel=1e-15)


def test_plateau_divides_alpha_exactly_after_patience_epochs_without_improvement():
    schedule = checked_schedule({"type": "plateau", "factor": 4, "patience": 2, "floor": 0.01}, 0.2, rows=1)
    alphas = []
    for cost in [5.0, 4.0, 4.0, 4.5, 3.0, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6]:
        alphas.append(schedule.alpha(len(alphas)))
        schedule.observe(cost)
    # no improvement after 4.0 twice (epochs 2, 3): α/4 from epoch 4; improvement at 3.0 resets the count;
    # then two stale epochs (5, 6): α/16; two more: α/64 = 0.003125, held at the floor 0.01
    assert alphas == [0.2, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.0125, 0.0125, 0.01, 0.01, 0.01]


def test_clipping_scales_a_long_gradient_to_the_norm_and_leaves_a_short_one():
    assert clip_factor(norm_of_scaled=10.0, scale=0.5, clip_norm=5.0) == pytest.approx(0.25)  # ‖D‖ = 20
    assert clip_factor(norm_of_scaled=1.0, scale=0.5, clip_norm=5.0) == 1.0  # ‖D‖ = 2
    assert clip_factor(norm_of_scaled=10.0, scale=0.5, clip_norm=None) == 1.0
    X, Y = problem(seed=7)
    net, plain = (Network([4, 6, 3], seed=2) for _ in range(2))
    before = net.theta.copy()
    _, dW, db = plain.gradients(X, Y, lambda_=0.2)
    norm = math.sqrt(sum(float(np.sum(g**2)) for g in dW + db))
    train(net, X, Y, alpha=1.0, lambda_=0.2, beta=0.0, batch="batch", epochs=1, clip_norm=norm / 3)
    step = before - net.theta  # β = 0: Θ moves by α D, D clipped to a third of its length
    assert np.linalg.norm(step) == pytest.approx(norm / 3, rel=1e-12)
    unclipped = Network([4, 6, 3], seed=2)
    train(unclipped, X, Y, alpha=1.0, lambda_=0.2, beta=0.0, batch="batch", epochs=1, clip_norm=norm * 2)
    np.testing.assert_allclose(
        before - unclipped.theta, np.concatenate([g.ravel() for g in dW + db]), atol=1e-15
    )


SCHEDULE_SPECS = [
    None,
    {"type": "step", "every": 2, "gamma": 0.5},
    {"type": "exponential"},
    {"type": "cosine", "warmup": 1},
    {"type": "invscaling"},
    {"type": "plateau", "patience": 1, "factor": 2},
]


def stop_after(calls):
    count = [0]

    def should_stop():
        count[0] += 1
        return count[0] > calls

    return should_stop


@pytest.mark.parametrize("batch", sorted(BATCH_MODES))
@pytest.mark.parametrize("schedule", SCHEDULE_SPECS, ids=lambda s: "constant" if s is None else s["type"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_run_stopped_and_resumed_ends_bit_identical_for_every_optimizer_and_schedule(
    optimizer, schedule, batch
):
    X, Y = problem(m=24)
    validation = problem(m=9, seed=3)

    def trainer():
        return Trainer(
            Network([4, 5, 3], activation="relu", seed=1), X, Y, alpha=0.05, lambda_=0.1, batch=batch,
            batch_size=8, seed=2, validation=validation, optimizer=optimizer, schedule=schedule,
            engine="numpy",
        )  # fmt: skip

    whole = trainer()
    whole.run(5)
    first = trainer()
    assert first.run(5, should_stop=stop_after(7)).stop_reason == "interrupted"
    arrays, record = first.checkpoint()
    record = json.loads(json.dumps(record))  # as it goes through the checkpoint file
    second = trainer()
    second.restore(arrays, record)
    second.run(5)
    assert second.net.theta.tobytes() == whole.net.theta.tobytes()
    assert sorted(name for name in arrays if name.startswith("optimizer_")) == sorted(
        f"optimizer_{name}" for name in whole.optimizer.state
    )


def test_a_checkpoint_of_another_optimizer_is_refused():
    X, Y = problem()
    momentum = Trainer(Network([4, 5, 3], seed=1), X, Y, optimizer="momentum")
    momentum.run(1)
    adam = Trainer(Network([4, 5, 3], seed=1), X, Y, optimizer="adam")
    with pytest.raises((ValueError, KeyError), match="optimizer"):
        adam.restore(*momentum.checkpoint())


def test_the_api_refuses_bad_optimizer_settings_with_a_sentence():
    X, Y = problem()
    net = Network([4, 5, 3], seed=1)
    with pytest.raises(
        NncliError, match="unknown optimizer 'sgd'; expected one of: momentum, nesterov, adam"
    ):
        train(net, X, Y, optimizer="sgd")
    with pytest.raises(
        NncliError, match=r"beta2 \(β₂, Adam's second moment\) should be a number in \[0, 1\)"
    ):
        train(net, X, Y, optimizer="adam", beta2=1.0)
    with pytest.raises(NncliError, match="clip_norm should be None or > 0, got -1"):
        train(net, X, Y, clip_norm=-1)
    with pytest.raises(NncliError, match=r"schedule\.type should be one of constant, step"):
        train(net, X, Y, schedule={"type": "linear"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer: rmsprop", "training.optimizer should be one of momentum, nesterov, adam"),
        (
            "schedule: {type: cosine, warmpu: 3}",
            "unknown key training.schedule.warmpu for a cosine schedule; "
            "did you mean training.schedule.warmup?",
        ),
        (
            "schedule: {type: step, gamma: 2}",
            "training.schedule.gamma should be a number in (0, 1]: the factor γ, got 2",
        ),
        ("schedule: cosine", "training.schedule should be a mapping such as {type: cosine, warmup: 5}"),
        ("clip_norm: 0", "training.clip_norm should be a finite number in (0, ∞), got 0"),
        ("epsilon: 0", "training.epsilon should be a finite number in (0, ∞), got 0"),
    ],
)
def test_bad_optimizer_keys_in_a_config_are_named(write_config, text, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(f"data: {{path: small.csv}}\ntraining: {{{text}}}\n"))
    assert message in str(caught.value)


def test_every_schedule_type_is_documented_and_constructible():
    for name in SCHEDULES:
        assert checked_schedule({"type": name}, 0.1, rows=10).alpha(0) > 0


def test_a_callback_can_stop_a_run_and_say_it_ends_on_the_best_weights():
    from nncli.training.callbacks import Callback

    class StopAtThree(Callback):
        def epoch_ended(self, record, state):
            return "early_stopping" if record.epoch == 3 else None

        def keeps_best(self, reason):
            return reason == "early_stopping"

    X, Y = problem()
    trainer = Trainer(Network([4, 5, 3], seed=1), X, Y, alpha=0.05)
    trainer.callbacks.append(StopAtThree())
    history = trainer.run(10)
    assert len(history) == 3 and history.stop_reason == "early_stopping"
    assert history.best_epoch == trainer.state.best_epoch  # the run ends on the best weights
    assert trainer.net.theta.tobytes() == trainer.best_theta.tobytes()
