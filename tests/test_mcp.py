"""The MCP server, with the official `mcp` client over streamable HTTP: tools, JSON answers."""

from __future__ import annotations

import asyncio
import json

import pytest

import app as qsearch_app
from qsearch import Engine, Settings
from qsearch.types import HIT_FIELDS


@pytest.fixture(scope="module")
def served_with_shared_index(minilm, minilm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    library = Engine(Settings(embed_model=str(minilm_dir)), embedder=minilm)
    (folder / "handbook.md").write_text(
        "# Handbook\n\nThe office closes at 6pm on Fridays during summer."
    )
    library.add_files([folder / "handbook.md"])
    library.save(folder / "shared-index")
    demo = qsearch_app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu"),
        index_dir=str(folder / "shared-index"),
    )
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


async def _session(url: str, work):  # noqa: ANN001, ANN202
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with (
        streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await work(session)


def test_an_agent_lists_the_tools_and_finds_a_passage_of_the_shared_index(served_with_shared_index):
    async def work(session):  # noqa: ANN001, ANN202
        tools = {t.name: t for t in (await session.list_tools()).tools}
        result = await session.call_tool(
            "search",
            {
                "query": "When does the office close on Fridays?",
                "top_k": 3,
                "rerank": False,
                "instruction": qsearch_app.INSTRUCTIONS[0][1],
                "mode": "hybrid",
                "rerank_candidates": 10,
            },
        )
        return tools, result

    tools, result = asyncio.run(_session(served_with_shared_index, work))
    assert {"search", "add_documents"} <= set(tools)
    assert not {"remove_document", "clear_documents", "end_session"} & set(tools), (
        "page-only events stay private"
    )
    assert (
        "Args" not in tools["search"].description and "add_documents" in tools["search"].description
    )
    assert set(tools["search"].inputSchema["properties"]) >= {"query", "top_k", "mode"}
    assert not result.isError, result.content
    text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    assert "<" not in text, "no HTML for an agent to pay for"
    hits = json.loads(text)  # the hits as data, in Hit.to_dict's vocabulary, and nothing else
    assert list(hits[0]) == list(HIT_FIELDS)
    assert hits[0]["source"].endswith("handbook.md") and "6pm on Fridays" in hits[0]["text"]
    description = tools["search"].description
    assert all(score in description for score in ("overall", "meaning", "keywords", "rerank"))


def test_an_agent_keeps_named_collections_and_searches_within_files(served_with_shared_index):
    """The library over MCP: make, list, rename, delete and undo; search narrowed to a file (of
    the shared index here) or to a date, and a file that is not there named in the error."""

    async def work(session):  # noqa: ANN001, ANN202
        async def call(tool: str, **arguments: object) -> tuple[bool, str]:
            result = await session.call_tool(tool, arguments)
            text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
            return result.isError, text

        tools = {t.name for t in (await session.list_tools()).tools}
        steps = [
            await call("create_collection", name="Travel notes"),
            await call("rename_collection", name="travel NOTES", new_name="Trips"),
            await call("list_collections"),
            await call("delete_collection", name="Trips"),
            await call("undo_removal"),
            await call("list_collections"),
            await call("create_collection", name="trips"),
        ]
        query = {"query": "When does the office close on Fridays?", "top_k": 3}
        found = [
            await call("search", **query, files="handbook.md", since="2000-01-01"),
            await call("search", **query, files="*.pdf"),
            await call("search", **query, since="2999-01-01"),
        ]
        return tools, steps, found

    tools, steps, found = asyncio.run(_session(served_with_shared_index, work))
    assert {"list_collections", "create_collection", "delete_collection", "undo_removal"} <= tools
    (made, renamed, listed, deleted, undone, again, taken) = steps
    assert not made[0] and "“Travel notes”" in made[1] and "“Trips”" in renamed[1]
    assert [c["name"] for c in json.loads(listed[1])] == ["My documents", "Trips"]
    assert "undo_removal brings it back" in deleted[1] and "Restored the collection" in undone[1]
    assert [c["name"] for c in json.loads(again[1])][-1] == "Trips"
    assert taken[0] and "already a collection named “Trips”" in taken[1]
    narrowed, no_pdf, too_late = found
    assert not narrowed[0] and json.loads(narrowed[1])[0]["source"].endswith("handbook.md")
    assert no_pdf[0] and "no file named '*.pdf' in “Trips” and the shared index" in no_pdf[1]
    assert "they hold: handbook.md" in no_pdf[1]
    assert too_late[0] and "matches added since 2999-01-01" in too_late[1]
