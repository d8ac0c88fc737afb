"""The demonstrated effect, with the demo's own configuration (profile `demo`: the tiny DenseNet, its image size,
epochs and seed): on the synthetic data with its spurious corner marker, the model trained with BCE alone leans on
the marker; trained with the explanation loss (logit_sqr, alpha 1), same seed and budget, its heatmaps move onto
the lesions. Test positives' mean all-saliency precision must be higher by at least 0.2 (on the replication's three
seeds of this cell the gap is about 0.4). A guard against a loss that wrecks the classifier: its last epoch's training
accuracy (369 images) not lower than BCE's by more than 0.1 (this draw: 0.900 against 0.946; over the
replication's 21 draws of this pair in the shortcut world, 7 findings x 3 seeds, the difference runs from -0.054
to +0.015). Test accuracy is not asserted: on 64 test images where the marker no longer predicts the label it is a
one-draw number that moves with small changes (on one machine this test's draw gives LD-Sqr 0.500 against BCE's
0.594 and the demo's run of the cell 0.578 against 0.594; earlier machines gave LD-Sqr the higher number); whether
guidance raises it is answered by the replication over seeds and findings (README, "replication_findings")."""
import dataclasses

import pandas as pd

import pytest

from expaware_nb.profiles import expand, load_profile
from expaware_nb.train import train_run

pytestmark = pytest.mark.slow      # trains two runs of the demo


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("effect")
    profile = load_profile("demo", [f"data={root}/synth", f"cache_dir={root}/cache"])
    cells = {(c.config.formulation, c.config.alpha): c.config for c in expand(profile)}
    return {form: (train_run(dataclasses.replace(cells[form, alpha], panel_size=4), root / form),
                   pd.read_csv(root / form / "history.csv").iloc[-1])
            for form, alpha in [("bce", 0.), ("logit_sqr", 1.)]}


def test_explanation_loss_moves_saliency_onto_lesions(runs):
    (bce, bce_last), (exp, exp_last) = runs["bce"], runs["logit_sqr"]
    print(f"all-saliency precision: BCE {bce['common_all_precision']:.3f}, LD-Sqr {exp['common_all_precision']:.3f}; "
          f"last epoch's training accuracy: BCE {bce_last.train_accuracy:.3f}, LD-Sqr {exp_last.train_accuracy:.3f}; "
          f"test accuracy (not asserted): BCE {bce['accuracy']:.3f}, LD-Sqr {exp['accuracy']:.3f}")
    assert exp["common_all_precision"] >= bce["common_all_precision"] + .2
    assert exp_last.train_accuracy >= bce_last.train_accuracy - .1
