"""Request and response models of the HTTP API (pydantic v2); they also feed the OpenAPI docs at /docs.

Ids are ``StrictInt | StrictStr``: JSON numbers and strings both reach the service, which
matches them to the model's id type (an int-id model accepts ``"196"``, by ASCII digits only,
a str-id model ``196``); booleans, floats and nulls are refused with a 422 naming the field.
Every field is strict: ``"k": true`` or ``"k": "2"`` is a 422, not 1 or 2.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

RawId = StrictInt | StrictStr

MAX_K = 1000
MAX_BATCH_USERS = 1000  # users and histories together: the rows of one request
MAX_HISTORY_ITEMS = 5000  # items per history (MovieLens-1M's most active user rated 2,314)
MAX_QUERY_CHARS = 200  # item search text
MAX_SEARCH = 100  # item search results
EXPLAIN_N = 3  # reasons per recommended item with explain
# An explanation scores its history once per item in it, left out (for NCF: one fold-in each), so
# the work grows with the square of the history: these bound what one request may ask for.
MAX_EXPLAIN_ROWS = 100  # users and histories per request with explain
MAX_EXPLAIN_ITEMS = 1000  # history items explained per request, all rows together
MAX_PAIRS = 10_000
MAX_EXCLUDE = 10_000
MAX_OFFSET = 2**53 - 1  # the largest integer every JSON reader keeps exact

Fallback = Literal["none", "popular"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _bounded(v: list, most: int, what: str, *, empty: str | None = None, split: bool = True) -> list:
    """A request list's length check: not empty (when ``empty`` says how to fix it), at most ``most``."""
    if empty is not None and not v:
        raise ValueError(empty)
    if len(v) > most:
        raise ValueError(f"at most {most} {what}, got {len(v)}" + ("; split the batch" if split else ""))
    return v


class HistoryIn(_Strict):
    """A visitor the model never trained on, described by the items they liked."""

    id: RawId | None = Field(None, description="the caller's label for this history, echoed in its result row")
    items: list[RawId] = Field(description=f"raw item ids the visitor interacted with, 1 to {MAX_HISTORY_ITEMS}")
    timestamps: list[StrictInt | StrictFloat] | None = Field(
        None, description="one time per item (same unit as the training data), so recent items weigh more"
    )

    @field_validator("items")
    @classmethod
    def _items_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_HISTORY_ITEMS, "items per history", empty="give at least one item id", split=False)

    @field_validator("timestamps")
    @classmethod
    def _finite(cls, v: list | None) -> list | None:
        # An int beyond 2**63 is no time (and math.isfinite cannot take one beyond a float).
        if v is not None and not all(abs(t) < 2**63 if isinstance(t, int) else math.isfinite(t) for t in v):
            raise ValueError("timestamps must be finite numbers below 2**63 in magnitude")
        return v

    @model_validator(mode="after")
    def _one_time_per_item(self) -> HistoryIn:
        if self.timestamps is not None and len(self.timestamps) != len(self.items):
            raise ValueError(
                f"timestamps has {len(self.timestamps)} values but items has {len(self.items)}; give one per item"
            )
        return self


class BatchRecommendationsIn(_Strict):
    users: list[RawId] = Field(default_factory=list, description="raw user ids of known users")
    histories: list[HistoryIn] = Field(
        default_factory=list, description="visitors described by their items (fold-in: no retraining)"
    )
    k: int = Field(10, ge=1, le=MAX_K, description="items per user or history")
    filter_seen: bool = Field(True, description="leave out items the user (or history) already has")
    exclude: list[RawId] = Field(default_factory=list, description="raw item ids never to recommend")
    fallback: Fallback = Field(
        "none", description="'popular': answer unknown users with popular items instead of 404 (users only)"
    )
    explain: bool = Field(False, description=f"add 'because': up to {EXPLAIN_N} history items behind each item")

    @field_validator("users")
    @classmethod
    def _users_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_BATCH_USERS, "users per request")

    @field_validator("histories")
    @classmethod
    def _histories_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_BATCH_USERS, "histories per request")

    @model_validator(mode="after")
    def _some_rows(self) -> BatchRecommendationsIn:
        if not self.users and not self.histories:
            raise ValueError("give at least one user id in 'users' or one history in 'histories'")
        if len(self.users) + len(self.histories) > MAX_BATCH_USERS:
            raise ValueError(
                f"at most {MAX_BATCH_USERS} users and histories together per request, "
                f"got {len(self.users) + len(self.histories)}; split the batch"
            )
        if self.explain and len(self.users) + len(self.histories) > MAX_EXPLAIN_ROWS:
            raise ValueError(
                f"with explain at most {MAX_EXPLAIN_ROWS} users and histories together per request, "
                f"got {len(self.users) + len(self.histories)}; split the batch"
            )
        return self

    @field_validator("exclude")
    @classmethod
    def _exclude_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_EXCLUDE, "excluded items", split=False)


class Pair(_Strict):
    user: RawId
    item: RawId


class ScoresIn(_Strict):
    pairs: list[Pair] = Field(description=f"(user, item) pairs to score, 1 to {MAX_PAIRS}")

    @field_validator("pairs")
    @classmethod
    def _pairs_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_PAIRS, "pairs per request", empty="give at least one {user, item} pair")


class ReloadIn(_Strict):
    path: str | None = Field(None, description="bundle folder to load instead of the current one (default: reload it)")


# -- responses (documentation; handlers serialise with orjson) ----------------------------------
class Item(BaseModel):
    id: RawId
    score: float | None = None
    title: str | None = None
    year: int | None = None
    genres: list[str] | None = None


class Reason(BaseModel):
    item: RawId = Field(description="an item of the user's (or history's) past behind this recommendation")
    title: str | None = Field(None, description="its title when the bundle has item metadata")
    weight: float = Field(ge=0, le=1, description="its share of the explanation, in [0, 1]")


class RecommendedItem(Item):
    because: list[Reason] | None = Field(
        None, description=f"with explain: up to {EXPLAIN_N} reasons, largest weight first ([] for a fallback row)"
    )


class Recommendations(BaseModel):
    user: RawId
    known: bool = Field(description="false when the user is unknown and the popular fallback answered")
    fallback: Fallback = Field(description="'popular' when these are popular items for an unknown user")
    k: int
    items: list[RecommendedItem]


class HistoryRecommendations(BaseModel):
    history: RawId | None = Field(description="the history's id as sent (null when none was given)")
    unknown_items: list[RawId] = Field(description="items of the history the model does not know (left out)")
    k: int
    items: list[RecommendedItem]


class BatchRecommendations(BaseModel):
    k: int
    results: list[Recommendations] = Field(description="one row per user, in request order")
    histories: list[HistoryRecommendations] = Field(description="one row per history, in request order")


class Similar(BaseModel):
    item: Item
    k: int
    items: list[Item]


class ScoredPair(BaseModel):
    user: RawId
    item: RawId
    score: float


class Scores(BaseModel):
    scores: list[ScoredPair]


class History(BaseModel):
    user: RawId
    n_items: int
    items: list[Item]


class ItemSearch(BaseModel):
    q: str
    n_matches: int = Field(description="all matching items (only the first `limit` are returned)")
    items: list[Item] = Field(description="prefix matches first, then by training popularity")


class UserList(BaseModel):
    n_users: int
    offset: int
    users: list[RawId]


class Error(BaseModel):
    error: str = Field(description="a stable code, e.g. unknown_id, invalid_request, unauthorized")
    message: str = Field(description="one line: what is wrong and how to fix it")
