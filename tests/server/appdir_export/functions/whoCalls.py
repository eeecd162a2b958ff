"""What a function learns about its caller and the request."""


def main(context):
    request = context.request
    return {
        "user": context.user.id,
        "system": context.runningAsSystem(),
        "remote": request.remote_address,
        "headers": {name: list(values) for name, values in request.headers.items()},
        "query": request.raw_query_string,
    }
