"""The demonstrated effect, with the demo's own configuration (profile `demo`: the tiny DenseNet, its image size,
epochs and seed): on the synthetic data with its spurious corner marker, the model trained with BCE alone leans on
the marker; trained with the explanation loss (logit_sqr, alpha 1), same seed and budget, its heatmaps move onto
the lesions. Test positives' mean all-saliency precision must be higher by at least 0.2 (on the replication's three
seeds of this cell the gap is about 0.4), and test accuracy (where the marker no longer predicts the label) not lower
by more than 0.05, about three of the 64 test images: a guard against a loss that wrecks the classifier. Whether
guidance raises accuracy is not a one-draw question (one draw: 0.578 against BCE's 0.594 on one machine, higher on
another); the replication answers it over seeds and findings (README, "replication_findings")."""
import dataclasses

import pytest

from expaware_nb.sweep import expand, load_profile
from expaware_nb.train import train_run

pytestmark = pytest.mark.slow      # trains two runs of the demo


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("effect")
    profile = load_profile("demo", [f"data={root}/synth", f"cache_dir={root}/cache"])
    cells = {(c.config.formulation, c.config.alpha): c.config for c in expand(profile)}
    return {form: train_run(dataclasses.replace(cells[form, alpha], panel_size=4), root / form)
            for form, alpha in [("bce", 0.), ("logit_sqr", 1.)]}


def test_explanation_loss_moves_saliency_onto_lesions(runs):
    bce, exp = runs["bce"], runs["logit_sqr"]
    print(f"all-saliency precision: BCE {bce['common_all_precision']:.3f}, LD-Sqr {exp['common_all_precision']:.3f}; "
          f"test accuracy: BCE {bce['accuracy']:.3f}, LD-Sqr {exp['accuracy']:.3f}")
    assert exp["common_all_precision"] >= bce["common_all_precision"] + .2
    assert exp["accuracy"] >= bce["accuracy"] - .05
