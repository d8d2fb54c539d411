"""CTC reads held to the label lengths a net was trained on: the most probable frame path whose
read has between `shortest` and `longest` symbols (a Viterbi pass over states "k symbols written,
the last frame blank or symbol c"). Greedy decoding takes each frame's best class, which is the
most probable path of any length; where that path reads too few symbols (two frames of a
doubled letter merged, a faint letter left blank) or too many, this one finds the best path that
reads a possible length.

NumPy only: the ONNX Runtime reader (inference.reader) uses it without importing PyTorch, and
models.decoding hands it the rows whose greedy read has the wrong length."""

import numpy as np


def writes(index: np.ndarray, blank: int) -> np.ndarray:
    """(B, T) frame classes -> (B, T) whether each frame writes a symbol: neither the blank nor a
    repeat of the frame before (NumPy's twin of models.decoding.writes)."""
    previous = np.pad(index, ((0, 0), (1, 0)), constant_values=blank)[:, :-1]
    return (index != blank) & (index != previous)


def symbol_counts(index: np.ndarray, blank: int) -> np.ndarray:
    """(B, T) frame classes -> (B,) number of symbols each path reads (repeats merged, blanks dropped)."""
    return writes(index, blank).sum(1)


def fit_lengths(log_probs: np.ndarray, index: np.ndarray, shortest: int, longest: int) -> np.ndarray:
    """(B, T, C + 1) log-probabilities (blank last) and (B, T) greedy frame classes -> the frame
    classes with every row that reads fewer than `shortest` or more than `longest` symbols
    replaced by its best path that reads a length in between (`index` itself where no row needs
    it). Rows already in range keep the greedy path, which is then also the best such path."""
    blank = log_probs.shape[-1] - 1
    n = symbol_counts(index, blank)
    wrong = (n < shortest) | (n > longest)
    if not wrong.any():
        return index
    index = index.copy()
    index[wrong] = best_paths(log_probs[wrong], shortest, longest)
    return index


def best_paths(log_probs: np.ndarray, shortest: int, longest: int) -> np.ndarray:
    """(R, T, C + 1) log-probabilities, blank last -> (R, T) frame classes of each row's most
    probable path reading `shortest` to `longest` symbols (its greedy path where none can)."""
    # A diverged net's NaN as an impossible class: NaN compares false both ways, so the argmax
    # and backtrack would walk through states that no path reaches.
    scores = np.nan_to_num(log_probs.astype(np.float64), nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    rows, frames, classes = scores.shape
    if not rows:
        return np.empty((0, frames), np.int64)
    blank = classes - 1
    # state[r, k, c]: the best log-score of a path so far that has written k symbols and whose
    # last frame is class c (the blank included); before the first frame, as after a blank.
    state = np.full((rows, longest + 1, classes), -np.inf)
    state[:, 0, blank] = 0.0
    back = np.empty((frames, rows, longest + 1, classes), np.int64)  # each state's previous class
    back[:, :, 0, :blank] = blank  # states never reached (a symbol with none written): kept defined
    for t in range(frames):
        state = _step(state, back[t]) + scores[:, t, None, :]
    allowed = state[:, shortest:].reshape(rows, -1)
    ends = allowed.argmax(1)  # the best allowed length and last class
    path = _backtrack(ends // classes + shortest, ends % classes, back)
    # No allowed read at all (fewer frames than `shortest`; equal neighbours that cannot be
    # split): the greedy path, rather than one through impossible states.
    none = np.isneginf(allowed.max(1))
    path[none] = scores[none].argmax(-1)
    return path


def _step(state: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The states one frame later, before that frame's log-probabilities are added; `back` gets
    each new state's previous class. A blank follows any state of the same k; symbol c at k
    either holds c at k or follows a state of k - 1 whose class is not c (equal neighbours merge,
    so the best such state, or the second best where the best is c itself)."""
    rows, lengths, classes = state.shape
    blank = classes - 1
    best, first = state.max(-1), state.argmax(-1)  # (R, k)
    runner_up = state.copy()
    runner_up[np.arange(rows)[:, None], np.arange(lengths), first] = -np.inf
    is_first = first[..., None] == np.arange(blank)  # (R, k, C)
    enter = np.where(is_first, runner_up.max(-1)[..., None], best[..., None])[:, :-1]  # from k to k + 1
    enter_from = np.where(is_first, runner_up.argmax(-1)[..., None], first[..., None])[:, :-1]
    held = state[:, 1:, :blank] >= enter
    new = np.empty_like(state)
    new[:, 0, :blank] = -np.inf  # no symbol written yet
    new[:, 1:, :blank] = np.where(held, state[:, 1:, :blank], enter)
    new[..., blank] = best
    back[:, 1:, :blank] = np.where(held, np.arange(blank), enter_from)
    back[..., blank] = first
    return new


def _backtrack(k: np.ndarray, c: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Walk the end states (k symbols written, last frame class c) back to the first frame."""
    frames, rows, _, classes = back.shape
    rr = np.arange(rows)
    path = np.empty((rows, frames), np.int64)
    for t in range(frames - 1, -1, -1):
        path[:, t] = c
        previous = back[t, rr, k, c]
        # A symbol frame whose previous class differs wrote a new symbol: one fewer before it.
        k = np.where((c != classes - 1) & (previous != c), k - 1, k)
        c = previous
    return path
