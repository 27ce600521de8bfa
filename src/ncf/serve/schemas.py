"""Request and response models of the HTTP API (pydantic v2); they also feed the OpenAPI docs at /docs.

Ids are ``StrictInt | StrictStr``: JSON numbers and strings both reach the service, which
matches them to the model's id type (an int-id model accepts ``"196"``, a str-id model
``196``); booleans, floats and nulls are refused with a 422 naming the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

RawId = StrictInt | StrictStr

MAX_K = 1000
MAX_BATCH_USERS = 1000
MAX_PAIRS = 10_000
MAX_EXCLUDE = 10_000

Fallback = Literal["none", "popular"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchRecommendationsIn(_Strict):
    users: list[RawId] = Field(description=f"raw user ids, 1 to {MAX_BATCH_USERS}")
    k: int = Field(10, ge=1, le=MAX_K, description="items per user")
    filter_seen: bool = Field(True, description="leave out items the user interacted with in training")
    exclude: list[RawId] = Field(default_factory=list, description="raw item ids never to recommend")
    fallback: Fallback = Field("none", description="'popular': answer unknown users with popular items instead of 404")

    @field_validator("users")
    @classmethod
    def _users_bounds(cls, v: list) -> list:
        if not v:
            raise ValueError("give at least one user id")
        if len(v) > MAX_BATCH_USERS:
            raise ValueError(f"at most {MAX_BATCH_USERS} users per request, got {len(v)}; split the batch")
        return v

    @field_validator("exclude")
    @classmethod
    def _exclude_bounds(cls, v: list) -> list:
        if len(v) > MAX_EXCLUDE:
            raise ValueError(f"at most {MAX_EXCLUDE} excluded items, got {len(v)}")
        return v


class Pair(_Strict):
    user: RawId
    item: RawId


class ScoresIn(_Strict):
    pairs: list[Pair] = Field(description=f"(user, item) pairs to score, 1 to {MAX_PAIRS}")

    @field_validator("pairs")
    @classmethod
    def _pairs_bounds(cls, v: list) -> list:
        if not v:
            raise ValueError("give at least one {user, item} pair")
        if len(v) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} pairs per request, got {len(v)}; split the batch")
        return v


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
