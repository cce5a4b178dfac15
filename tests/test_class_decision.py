"""When is the class decided: the classifier's view of x̂₀ along a reverse run."""

import torch


def test_the_class_is_decided_after_the_last_change_of_mind():
    from pipelines.class_decision import decision_steps

    one_hot = lambda classes: torch.nn.functional.one_hot(torch.tensor(classes), 3).float()
    # image 0: 2, 1, 1, 1 (decided at step 1); image 1: 1, 1, 0, 1 (decided at step 3); image 2: 0 throughout (0)
    probs = torch.stack([one_hot([2, 1, 0]), one_hot([1, 1, 0]), one_hot([1, 0, 0]), one_hot([1, 1, 0])])
    final, decided = decision_steps(probs)
    assert final == [1, 1, 0] and decided == [1, 3, 0]


def test_class_decision_classifies_every_recorded_x0_hat_in_one_pass(tiny_pipeline):
    from pipelines.class_decision import class_decision

    traj = tiny_pipeline.sample_trajectory(
        batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0)
    )
    calls = []

    def brightness_classifier(images):  # class 1 when x̂₀ is bright on average
        calls.append(len(images))
        m = images.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], dim=1) * 10

    decision = class_decision(traj, brightness_classifier)
    assert calls == [6 * 2] and decision.probs.shape == (6, 2, 2)
    assert decision.final == (traj.final.mean(dim=(1, 2, 3)) > 0).long().tolist()
    assert all(0 <= d <= 5 for d in decision.decided)
