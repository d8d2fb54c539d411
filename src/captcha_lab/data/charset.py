from dataclasses import dataclass

from captcha_lab.errors import ConfigError

# The 19 symbols of the public captcha_images_v2 set; the report used a-z0-9.
CAPTCHA_V2 = "2345678bcdefgmnpwxy"
REPORT36 = "abcdefghijklmnopqrstuvwxyz0123456789"
PAD = -1  # target index after the end of a label shorter than the longest
UNKNOWN = -2  # target index of a test label's symbol outside the charset: never read right
UNKNOWN_SYMBOL = "\ufffd"  # how such a symbol is written in texts


def check_symbols(symbols: str, blanks: bool = True) -> None:
    """charset.symbols refused in one line naming the key: empty (else data.synthetic would be
    blamed, 0 symbols making 0 labels) or with a symbol twice; with `blanks`, also whitespace (a
    quoting slip such as '2345678 bcdefg' would add a class that no captcha's symbol is). A
    checkpoint's alphabet may hold a blank: charset=auto takes its symbols from the labels."""
    if not symbols:
        raise ConfigError(
            "charset.symbols: empty; name the captchas' symbols (e.g. charset=captcha_v2) or charset=auto"
        )
    if blanks and (blank := next((c for c in symbols if c.isspace()), None)):
        raise ConfigError(f"charset.symbols: {symbols!r} holds whitespace ({blank!r}); name the symbols without it")
    if twice := next((c for c in symbols if symbols.count(c) > 1), None):
        raise ConfigError(f"charset.symbols: {symbols!r} holds {twice!r} twice; name each symbol once")


@dataclass(frozen=True)
class Charset:
    symbols: str = CAPTCHA_V2

    def __post_init__(self):
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"charset symbols must be non-empty and unique, got {self.symbols!r}")

    def __len__(self) -> int:
        return len(self.symbols)

    def unknown(self, text: str) -> set[str]:
        return set(text) - set(self.symbols)

    def encode(self, text: str, unknown: bool = False) -> list[int]:
        """Symbol indices; `unknown`: UNKNOWN for a symbol outside the charset instead of a ValueError."""
        if unknown:
            return [self.symbols.find(c) if c in self.symbols else UNKNOWN for c in text]
        return [self.symbols.index(c) for c in text]

    def decode(self, indices) -> str:
        """Symbol indices -> text, UNKNOWN as UNKNOWN_SYMBOL. PAD (or any other negative index) is
        refused rather than read as a symbol counted from the end: drop it first (`texts`)."""
        indices = [int(i) for i in indices]
        if any(i < 0 and i != UNKNOWN for i in indices):
            raise ValueError(f"not symbol indices: {indices}")
        return "".join(UNKNOWN_SYMBOL if i == UNKNOWN else self.symbols[i] for i in indices)

    def texts(self, index) -> list[str]:
        """(B, W) symbol indices padded with PAD (decoded reads or targets) -> B strings."""
        return [self.decode(i for i in row.tolist() if i != PAD) for row in index]
