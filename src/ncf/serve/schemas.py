"""Request and response models of the HTTP API (pydantic v2); they also feed the OpenAPI docs at /docs.

Ids are ``StrictInt | StrictStr``: JSON numbers and strings both reach the service, which
matches them to the model's id type (an int-id model accepts ``"196"``, by ASCII digits only,
a str-id model ``196``); booleans, floats and nulls are refused with a 422 naming the field.
Every field is strict: ``"k": true`` or ``"k": "2"`` is a 422, not 1 or 2.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

RawId = StrictInt | StrictStr

MAX_K = 1000
MAX_BATCH_USERS = 1000
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


class BatchRecommendationsIn(_Strict):
    users: list[RawId] = Field(description=f"raw user ids, 1 to {MAX_BATCH_USERS}")
    k: int = Field(10, ge=1, le=MAX_K, description="items per user")
    filter_seen: bool = Field(True, description="leave out items the user interacted with in training")
    exclude: list[RawId] = Field(default_factory=list, description="raw item ids never to recommend")
    fallback: Fallback = Field("none", description="'popular': answer unknown users with popular items instead of 404")

    @field_validator("users")
    @classmethod
    def _users_bounds(cls, v: list) -> list:
        return _bounded(v, MAX_BATCH_USERS, "users per request", empty="give at least one user id")

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


class Recommendations(BaseModel):
    user: RawId
    known: bool = Field(description="false when the user is unknown and the popular fallback answered")
    fallback: Fallback = Field(description="'popular' when these are popular items for an unknown user")
    k: int
    items: list[Item]


class BatchRecommendations(BaseModel):
    k: int
    results: list[Recommendations]


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


class UserList(BaseModel):
    n_users: int
    offset: int
    users: list[RawId]


class Error(BaseModel):
    error: str = Field(description="a stable code, e.g. unknown_id, invalid_request, unauthorized")
    message: str = Field(description="one line: what is wrong and how to fix it")
