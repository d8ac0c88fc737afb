"""Write the README's numbers from the saved outputs they quote, so that none is typed by hand.

A block of README.md between `<!-- table: NAME -->` (or `<!-- text: NAME -->`) and `<!-- end table -->` (`<!-- end
text -->`) holds the table (or paragraph) NAME, generated from the saved outputs by the function of that name below:

    replication_claims    every claim of the paper, tested in each synthetic world of results/replication
    replication_reading   which verdicts agree between the two worlds, and what that says of the claims
    replication_findings  per world and finding: test accuracy and all-saliency precision of BCE and LD-Sqr at alpha 1
                          (medians over seeds), and accuracy on the images whose marker contradicts the label
    calibration           the calibration of the claims' tests (docs/calibration.csv, written by tools/calibrate.py)
    reproducibility       one cell trained again (bench/results/reproducibility.json, bench/reproducibility.py)
    guidance_protocols    EPG and IoU of the guidance profile's runs under the grid and Model-Guidance protocols
                          (docs/readme/guidance_protocols.csv, from the guidance report: `--guidance FIGURES`)
    mask_supervision      box against mask supervision over the masks profile's training draws (results/masks,
                          shipped by tools/ship_masks.py), and the sentence that reads it (mask_reading)

    python tools/readme_tables.py            # rewrite the blocks of README.md
    python tools/readme_tables.py --check    # exit 1 if README.md differs from what the outputs give

`--figures FIGURES` also copies the README's figures from an `expaware paper results/replication --figures FIGURES`
run into docs/readme/; `--guidance FIGURES` copies the guidance report's figure and protocol table from the figures
folder of an `expaware sweep guidance --figures FIGURES` run. tests/check_docs.py runs the check."""
import argparse, json, re, shutil, sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

from expaware_nb.beyond import SUPERVISION_METRICS, SUPERVISION_PRIMARY, cue_robustness, supervision_comparison
from expaware_nb.calibration import calibration_table
from expaware_nb.claims import claims_table
from expaware_nb.results import load_results, to_markdown
from expaware_nb.runs import collect_runs

ROOT = Path(__file__).resolve().parents[1]
REPLICATION = ROOT / "results" / "replication"
MASKS = ROOT / "results" / "masks"
WORLDS = ("shortcut", "clean")
BLOCK = re.compile(r"(<!-- (?:table|text): (\S+) -->\n)(.*?)(<!-- end (?:table|text) -->)", re.S)
FIGURES = {"fig3_heatmaps.png": "fig3_heatmaps", "fig4b_explanation_per_alpha.png": "fig4b_explanation_per_alpha",
           "fig5_formulations.png": "fig5_formulations", "claims_per_disease.png": "claims_per_disease"}


@lru_cache
def results(world: str) -> pd.DataFrame:
    return load_results(REPLICATION / world)


@lru_cache
def claims(world: str) -> pd.DataFrame:
    return claims_table(results(world)).set_index("key")


def replication_claims() -> str:
    "Each claim's n, estimate and verdict in both worlds, and whether the verdicts agree."
    tables = {w: claims(w) for w in WORLDS}
    first = tables[WORLDS[0]]
    out = pd.DataFrame({"claim": first.claim})
    for w in WORLDS:
        t = tables[w]
        out[f"{w}: n"], out[f"{w}: estimate"], out[f"{w}: verdict"] = t.n, t.estimate, t.verdict
    out["same verdict"] = (tables[WORLDS[0]].verdict == tables[WORLDS[1]].verdict).map({True: "yes", False: "no"})
    return to_markdown(out.reset_index(drop=True))


def replication_findings() -> str:
    "Per world and finding: BCE and LD-Sqr (alpha 1) test accuracy and all-saliency precision, medians over seeds."
    rows = []
    for w in WORLDS:
        r = results(w)
        cue = cue_robustness(r)
        for disease, g in r.groupby("disease"):
            bce, guided = g[g.formulation == "bce"], g[(g.formulation == "logit_sqr") & (g.alpha == g.alpha.max())]
            row = {"world": w, "finding": disease, "seeds": bce.seed.nunique(),
                   "BCE accuracy": bce.accuracy.median(), "LD-Sqr accuracy": guided.accuracy.median(),
                   "BCE all precision": bce.all_precision.median(), "LD-Sqr all precision": guided.all_precision.median()}
            if len(cue):
                c = cue[cue.disease == disease]
                row["BCE accuracy, marker contradicts"] = c[c.formulation == "bce"].accuracy_cue_conflicts.median()
                row["LD-Sqr accuracy, marker contradicts"] = c[(c.formulation == "logit_sqr") & (
                    c.alpha == c.alpha.max())].accuracy_cue_conflicts.median()
            rows.append(row)
    return to_markdown(pd.DataFrame(rows))


def replication_reading() -> str:
    "The claims grouped by their verdicts in the two worlds, with what each group means."
    shortcut, clean = claims("shortcut"), claims("clean")
    held = lambda t: t.verdict == "held"
    refuted = lambda t: t.verdict == "not held"
    groups = [(held(shortcut) & held(clean), "Held in both worlds: the method's, not a shortcut's"),
              (held(shortcut) & ~held(clean), "Held only in the shortcut world: about escaping a shortcut, not about "
                                               "explanation-aware training as such"),
              (~held(shortcut) & held(clean), "Held only in the clean world: the shortcut hides them"),
              (refuted(shortcut) & refuted(clean), "Not held in either world: the data refute them wherever the "
                                                   "truth is known"),
              (~held(shortcut) & ~held(clean) & ~(refuted(shortcut) & refuted(clean)),
               "Held in neither world, refuted in at most one (the table says which): at this n the grid gives no "
               "evidence for them, a result rather than a want of units")]
    lines = [f"- **{title}**: " + (", ".join(f"{shortcut.claim[k].rstrip('.')} ({k})" for k in shortcut.index[mask])
                                   or "none") + "." for mask, title in groups]
    return "\n".join(lines) + "\n"


def reproducibility() -> str:
    r = json.loads((ROOT / "bench" / "results" / "reproducibility.json").read_text())
    rows = [{"compared": name, "identical": r[key]["identical"],
             "largest test-metric difference": r[key]["max_metric_difference"],
             "largest probability difference": r[key]["max_probability_difference"]}
            for key, name in (("same_machine_same_threads", "the same cell twice, here, one thread each"),
                              ("one_thread_vs_two", "one thread against two, here"),
                              ("here_vs_shipped", "here (one thread) against the shipped run"))]
    return to_markdown(pd.DataFrame(rows)) + f"\nCell `{r['cell']}`, {r['cpu']}.\n"


def calibration() -> str:
    return to_markdown(calibration_table(pd.read_csv(ROOT / "docs" / "calibration.csv")))


def guidance_protocols() -> str:
    "Median EPG and IoU per method and attribution under both protocols (the guidance report's saved table)."
    table = pd.read_csv(ROOT / "docs" / "readme" / "guidance_protocols.csv")
    return to_markdown(table) + ("\nMedians over each method's runs (its alphas and seeds), common reading (Grad-CAM of z1 - z0 "
                                 "for every model).\n")


@lru_cache
def masks_comparison() -> pd.DataFrame:
    return supervision_comparison(collect_runs(MASKS))


def mask_supervision() -> str:
    "Box against mask supervision: medians per arm, the paired difference over draws, its tests."
    table = masks_comparison().rename(columns={"bce": "BCE", "boxes": "LD-Sqr, boxes", "masks": "LD-Sqr, masks",
                                               "difference": "masks - boxes (HL)"})
    return to_markdown(table) + ("\nn: training draws (seeds) with both arms; medians over draws; HL: Hodges-Lehmann "
                                 "estimate of the paired difference; p: exact one-sided signed-rank tests.\n")


def mask_reading() -> str:
    "The comparison in words, from the same table."
    t = masks_comparison().set_index("metric")
    primary, accuracy = t.loc[SUPERVISION_METRICS[SUPERVISION_PRIMARY]], t.loc[SUPERVISION_METRICS["accuracy"]]
    iou = t.loc[SUPERVISION_METRICS["common_mask_iou"]]
    return (f"Over {primary.n} training draws, mask supervision put more of the Grad-CAM heat on the true lesion than "
            f"box supervision (median {primary.boxes:.3f} with boxes, {primary.masks:.3f} with masks; paired difference "
            f"{primary['difference']:+.3f}, higher in {primary.masks_higher} draws, one-sided p = "
            f"{primary.p_masks_higher:.3f}: {primary.verdict}). Its thresholded map's IoU with the lesion moved by "
            f"{iou['difference']:+.3f} (p = {min(iou.p_masks_higher, iou.p_masks_lower):.3f}, the smaller one-sided "
            f"p), and test accuracy by {accuracy['difference']:+.3f} (median {accuracy.boxes:.3f} with boxes, "
            f"{accuracy.masks:.3f} with masks; {accuracy.verdict}). BCE, for scale: {primary.bce:.3f} of its heat on "
            f"the lesion.\n")


def filled(readme: str) -> str:
    "The README with every table block replaced by its generated table."
    generators = {"replication_claims": replication_claims, "replication_reading": replication_reading,
                  "replication_findings": replication_findings, "calibration": calibration,
                  "reproducibility": reproducibility, "guidance_protocols": guidance_protocols,
                  "mask_supervision": mask_supervision, "mask_reading": mask_reading}
    def table(m):
        if m.group(2) not in generators: raise KeyError(f"README.md: no generator for the table {m.group(2)!r}")
        return m.group(1) + generators[m.group(2)]() + m.group(4)
    return BLOCK.sub(table, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    parser.add_argument("--figures", type=Path, help="copy the README's figures from this `expaware paper` output")
    parser.add_argument("--guidance", type=Path, help="copy the guidance report's figure and protocol table from here")
    args = parser.parse_args()
    readme = (ROOT / "README.md").read_text()
    if args.check:
        if filled(readme) != readme:
            print("README.md's numbers differ from what the saved outputs give: run python tools/readme_tables.py",
                  file=sys.stderr)
            return 1
        return 0
    if args.figures:
        for world in WORLDS:
            for name, stem in FIGURES.items():
                shutil.copyfile(args.figures / world / name, ROOT / "docs" / "readme" / f"{world}_{stem}.png")
    if args.guidance:
        for name in ("guidance_pareto.png", "guidance_protocols.csv"):
            shutil.copyfile(args.guidance / name, ROOT / "docs" / "readme" / name)
    (ROOT / "README.md").write_text(filled(readme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
