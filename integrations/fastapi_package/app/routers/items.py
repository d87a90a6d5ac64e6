"""Item routes, imported by ``app.main`` with a relative import (so ``app`` must be imported
as a package: ``sandman dev`` works that out from the ``__init__.py`` files)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

router = APIRouter(prefix="/items", tags=["items"])

ITEMS = {1: {"name": "lamp"}, 2: {"name": "chair"}}


@router.get("/{item_id}")
async def read_item(item_id: int) -> dict[str, object]:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="no such item")
    return {"id": item_id, **ITEMS[item_id]}
