"""A public function calling a private one through context.functions.execute."""


async def main(context, *args):
    inner = await context.functions.execute("secretSauce", *args)
    return {"outerSystem": context.running_as_system(), "inner": inner}
