"""An authentication trigger that never finishes on its own (the function timeout ends it)."""

import asyncio


async def main(context, auth_event):
    await asyncio.sleep(3600)
