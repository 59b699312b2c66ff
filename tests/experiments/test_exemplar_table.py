"""The exemplar experiment's table: cells, targets and which pooling differences exceed the seed spread."""
from mqformer_d2.experiments.exemplar_table import HELD_OUT, VAL, exemplar_table


def _run(pooling, seed, k1, k5):
    return {"pooling": pooling, "seed": seed, "exemplar_ap": {VAL: {"K=1": k1, "K=5": k5}, HELD_OUT: {"K=5": k5 / 2}}}


def test_table_reports_seeds_targets_and_spread():
    runs = [_run("mean", 1, 4.0, 8.0), _run("attention", 1, 5.0, 11.0), _run("mean", 2, 5.0, 9.0),
            _run("attention", 2, 6.0, 12.0)]
    table = exemplar_table({VAL: 12.0, HELD_OUT: 20.0}, runs, k_values=(1, 5))
    assert "| exemplars, mean | 4.5 (4.0 / 5.0) | 8.5 (8.0 / 9.0) | 4.2 (4.0 / 4.5) |" in table
    assert "| text (class names) | 12.0 | | 20.0 |" in table
    assert "| attention | -0.5 | +6.0 |" in table
    assert "| mean - attention | -3.0 | 1.0 / 1.0 | yes |" in table


def test_one_seed_never_exceeds_the_spread():
    table = exemplar_table({VAL: 12.0}, [_run("mean", 1, 4.0, 8.0), _run("max", 1, 4.0, 2.0)], k_values=(1, 5))
    assert "| mean - max | +6.0 | 0.0 / 0.0 | no |" in table
