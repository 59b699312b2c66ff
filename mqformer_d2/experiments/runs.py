"""Finding the main job's runs: experiments built on a trained main-job model take the newest."""
import glob
import os


def newest_run(parent: str) -> str:
    """The newest main-job run folder under `parent` (e.g. output/shapes) that holds
    model_final.pth and config.yaml (run_<YYYYmmdd_HHMMSS>[_n] names sort by time); a
    FileNotFoundError saying to train first."""
    runs = sorted(d for d in glob.glob(os.path.join(parent, "run_*"))
                  if os.path.isfile(os.path.join(d, "model_final.pth")) and os.path.isfile(os.path.join(d, "config.yaml")))
    if not runs:
        raise FileNotFoundError(f"no main-job run with model_final.pth under {parent}: run `make train` first "
                                "(or pass --run-dir)")
    return runs[-1]
