"""The named presets: field values for the runs people make most, and the few-labels recipe.

Plain data: :mod:`dpe_tutorial.running.config` turns a preset into a validated
:class:`~dpe_tutorial.running.config.ExperimentConfig` (``config.preset(name)``).
"""

from __future__ import annotations

# How a round trains from few labels (20 to 400), chosen on a validation split of the MNIST
# pool (results/mnist-recipe/README.md): a fixed number of optimizer steps whatever the
# labelled-set size, so 20 labels get as many updates as 400; Adam with cosine decay.
FEW_LABELS_RECIPE: dict = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "lr_schedule": "cosine",
    "batch_size": 128,
    "steps": 300,
}
# Gal et al.'s (2017) MNIST network, eight members: the ensemble the recipe was chosen for
FEW_LABELS_MEMBERS: dict = {"member": "gal_cnn", "width": 32, "members": 8}

PRESETS: dict[str, dict] = {
    # the few-labels recipe and members; the default of `dpe-tutorial query`
    "few-labels": {
        "name": "few-labels",
        "dataset": "digits",
        **FEW_LABELS_MEMBERS,
        **FEW_LABELS_RECIPE,
        "acquisition": "mutual_information",
        # the batch drawn by stochastic power sampling, not the top k: the labelling-loop
        # study's pre-registered rule (results/labelling-loop/README.md); from 20 MNIST labels
        # its picks beat random picks after 4 rounds of 20, the top k's did not
        "selection": "power",
        # bfloat16 where the machine computes it faster (1.8 x on an AMD EPYC with AVX-512 BF16)
        "mixed_precision": "auto",
    },
    # one run of the MNIST study's protocol (results/mnist-study): DPE with BALD, 20 balanced
    # labels, 20 more a round to 400; MNIST from data_path or $DPE_MNIST
    "mnist": {
        "name": "mnist",
        "dataset": "mnist",
        **FEW_LABELS_MEMBERS,
        **FEW_LABELS_RECIPE,
        "schedule": "linear-20",
        "budget": 400,
        "initial_labels": "balanced",
        "pool_subset": 2000,
        "acquisition": "mutual_information",
        "mixed_precision": True,
        "shift_samples": 0,
        "eval_batch_size": 1024,
    },
    # scikit-learn's digits: offline anywhere, under a minute on 2 cores
    "smoke": {
        "name": "smoke",
        "dataset": "digits",
        "schedule": "linear-4",
        "budget": 400,
        "members": 4,
        "member": "small_cnn",
        "width": 8,
        "epochs": 15,
        "batch_size": 32,
        "learning_rate": 0.05,
    },
    # a CIFAR-10 subset with narrow ResNet-18 members: minutes on a CPU
    "cifar10-smoke": {
        "name": "cifar10-smoke",
        "dataset": "cifar10",
        "train_subset": 5000,
        "test_subset": 1000,
        "schedule": "linear-4",
        "budget": 1000,
        "members": 4,
        "member": "resnet18",
        "width": 4,
        "epochs": 10,
        "batch_size": 64,
        "learning_rate": 0.05,
        "augment": True,
        "mixed_precision": "auto",
    },
    # the active-learning study at CPU scale (results/active-learning/README.md): the objective
    # study's members and training, whose last round (2,000 labels) is the objective study's
    # setting; a fixed 10,000-image pool keeps scoring cheap; 12 runs fit about 6 h of 2 cores
    "cifar10-cpu": {
        "name": "cifar10-cpu",
        "dataset": "cifar10",
        "train_subset": 10000,
        "test_subset": 5000,
        "schedule": "linear-4",
        "budget": 2000,
        "members": 8,
        "member": "resnet18",
        "width": 8,
        "epochs": 10,
        "batch_size": 64,
        "learning_rate": 0.05,
        "augment": True,
        "shift_samples": 0,
        # every member's test predictions (float16, about 0.8 MB a round): a later
        # analysis re-reads the members instead of rerunning the study
        "member_predictions": True,
    },
    # the papers' protocol: 8 ResNet-18 members, 4k/8k/12k/16k labels (a GPU job)
    "linear-4": {
        "name": "linear-4",
        "dataset": "cifar10",
        "schedule": "linear-4",
        "budget": 16000,
        "members": 8,
        "member": "resnet18",
        "width": 64,
        "acquisition": "predictive_entropy",
        "epochs": 100,
        "batch_size": 128,
        "learning_rate": 0.1,
        "augment": True,
        "mixed_precision": True,
        "eval_batch_size": 1024,
        "member_predictions": True,
    },
}
