"""The one place where tlrules touches private APIs of torch and the standard library.

Each private name (a module such as ``re._parser`` or ``torch._dynamo``, an attribute
such as ``DistributedDataParallel._get_ddp_logging_data`` or ``nn.Module._parameters``)
is used in exactly one function here, with the fallback for a version that lacks it.
``sre`` needs no torch and serves ``patterns``; ``torch_internals`` serves the parts
that hold models; ``cli_errors`` gives the CLI the click errors typer raises.
``lint-imports`` checks that no other module reaches a private name (the
``private-apis`` contract in ``pyproject.toml``).
"""
