"""Brute-force NumPy references written from the papers' equations (plain loops, float64).

Khosla et al., arXiv 2004.11362, Eq. 2 (L_out) and Eq. 3 (L_in); Kim et al.,
arXiv 2206.00384 (GenSCL). Independent of supcon's implementation: no masks,
no matrices, one anchor and one pair at a time.
"""

import math

import numpy as np


def _contrast_order(batch, views):
    """Every (sample, view), view-major: the contrast order."""
    return [(s, v) for v in range(views) for s in range(batch)]


def supcon(
    features,
    labels=None,
    *,
    mask=None,
    temperature=0.1,
    base_temperature=None,
    contrast_mode="all",
    summation="outside",
    denominator="all",
    positives_cap=None,
):
    """Per-sample SupCon loss, shape [batch]."""
    f = np.asarray(features, np.float64)
    batch, views = f.shape[:2]
    f = f.reshape(batch, views, -1)

    def is_positive(s, t):
        if mask is not None:
            return bool(mask[s][t])
        if labels is None:
            return s == t
        return labels[s] == labels[t]

    anchor_views = range(views) if contrast_mode == "all" else range(1)
    per_sample = np.zeros(batch)
    for s in range(batch):
        total = 0.0
        for v in anchor_views:
            others = [(t, w) for (t, w) in _contrast_order(batch, views) if (t, w) != (s, v)]
            positives = [(t, w) for (t, w) in others if is_positive(s, t)]
            if positives_cap is not None:
                # Whole samples, by index: the first positives_cap // views
                # other positive samples keep every view (the official code's count).
                foreign = sorted({t for (t, _) in positives if t != s})
                dropped = [p for p in positives if p[0] in foreign[positives_cap // views :]]
                others = [o for o in others if o not in dropped]
                positives = [p for p in positives if p not in dropped]
            negatives = [o for o in others if o not in positives]
            if not positives or (denominator == "only_negatives" and not negatives):
                continue

            def logit(t, w):
                return float(np.dot(f[s, v], f[t, w])) / temperature

            negatives_sum = sum(math.exp(logit(*n)) for n in negatives)
            all_sum = sum(math.exp(logit(*o)) for o in others)
            ratios = []
            for p in positives:
                if denominator == "all":
                    denom = all_sum
                elif denominator == "only_negatives":
                    denom = negatives_sum
                else:
                    denom = math.exp(logit(*p)) + negatives_sum
                ratios.append(math.exp(logit(*p)) / denom)
            if summation == "outside":
                total += -np.mean([math.log(r) for r in ratios])
            else:
                total += -math.log(np.mean(ratios))
        per_sample[s] = total / len(anchor_views)
    if base_temperature is not None:
        per_sample *= temperature / base_temperature
    return per_sample


def genscl(features, label_distributions, *, temperature=0.1, base_temperature=None, contrast_mode="all"):
    """Per-sample GenSCL loss, shape [batch]; distributions [batch, classes] or [batch, views, classes]."""
    f = np.asarray(features, np.float64)
    batch, views = f.shape[:2]
    d = np.asarray(label_distributions, np.float64)
    if d.ndim == 2:
        d = np.repeat(d[:, None], views, axis=1)

    def cosine(a, b):
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return 0.0 if na == 0 or nb == 0 else float(np.dot(a, b) / (na * nb))

    anchor_views = range(views) if contrast_mode == "all" else range(1)
    per_sample = np.zeros(batch)
    for s in range(batch):
        total = 0.0
        for v in anchor_views:
            others = [(t, w) for (t, w) in _contrast_order(batch, views) if (t, w) != (s, v)]
            sims = np.array([cosine(d[s, v], d[t, w]) for (t, w) in others])
            if sims.sum() <= 0:
                continue
            target = sims / sims.sum()
            logits = np.array([np.dot(f[s, v], f[t, w]) / temperature for (t, w) in others])
            log_softmax = logits - math.log(np.sum(np.exp(logits)))
            total += -float(np.sum(target * log_softmax))
        per_sample[s] = total / len(anchor_views)
    if base_temperature is not None:
        per_sample *= temperature / base_temperature
    return per_sample
