"""Dynamic hard negatives (DNS) at epoch level on the nested holdout validation part, 3 seeds (an experiment).

    OMP_NUM_THREADS=1 python benchmarks/experiments/hard_negatives.py M ['{"negatives": 8, "learning_rate": 0.003}']

Each negative slot draws M uniform candidates and keeps the one the current model (synced at
every epoch end) scores highest; M = 1 is the library's uniform sampling. It patches the
trainer in-process and is not part of the library: it did not pay off (RESULTS, "Round 4").
"""

from __future__ import annotations

import json
import sys
import time

import ncf.fused as F
import ncf.training as T
import numpy as np
import torch

from ncf import NCF, evaluate
from ncf.benchmark import tuning_split  # the same (inner, outer) carve as the tuning search

STATE: dict = {}


def main() -> None:
    m_cands = int(sys.argv[1])
    cfg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    orig_init = F.FusedStep.__init__

    def init(self, module, **kw) -> None:  # noqa: ANN001, ANN003
        STATE["module"] = module  # the trainer syncs it with the fused step's copies every epoch
        orig_init(self, module, **kw)

    F.FusedStep.__init__ = init

    class HardNegatives(T.EpochSamples):
        def epoch(self, gen, shard_gen=None):  # noqa: ANN001, ANN201
            if m_cands <= 1 or self.loss != "bce" or "module" not in STATE:
                return super().epoch(gen, shard_gen)
            n, p = int(self.negatives), len(self.pos_u)
            cands = self.sampler.sample(self.pos_u.repeat_interleave(m_cands), n, gen).to(self.pos_i.dtype)
            cands = cands.reshape(p, m_cands, n)
            mod = STATE["module"]
            mod.eval()
            with torch.inference_mode():
                uu = self.pos_u[:, None, None].expand(p, m_cands, n).reshape(-1)
                ii = cands.reshape(-1)
                sc = torch.cat([mod(uu[s : s + 2**20], ii[s : s + 2**20]) for s in range(0, len(uu), 2**20)])
            mod.train()
            neg = cands.gather(1, sc.reshape(p, m_cands, n).argmax(1, keepdim=True)).squeeze(1)  # hardest per slot
            u = torch.cat([self.pos_u, self.pos_u.repeat_interleave(n)])
            i = torch.cat([self.pos_i, neg.reshape(-1)])
            y = torch.zeros(len(u))
            y[:p] = 1.0
            cols = [u, i, y] + (
                [torch.cat([self.pos_w, self.pos_w.repeat_interleave(n)])] if self.pos_w is not None else []
            )
            perm = torch.randperm(len(u), generator=gen)
            return tuple(c[perm] for c in cols)

    T.EpochSamples = HardNegatives
    rows = []
    for seed in (0, 1, 2):
        inner, outer = tuning_split("holdout", seed)  # the test part is never used
        t = time.perf_counter()
        m = NCF(seed=seed, **cfg).fit(inner)
        r = evaluate(m, outer, k=[10])
        rows.append([time.perf_counter() - t, m.best_epoch_, r["ndcg@10"], r["recall@10"]])
    mean = np.mean(rows, axis=0)
    print(
        json.dumps(
            {
                "M": m_cands,
                "cfg": cfg,
                "fit_s": round(mean[0], 1),
                "best_epoch": round(mean[1], 1),
                "outer_ndcg@10": round(mean[2], 4),
                "outer_recall@10": round(mean[3], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
