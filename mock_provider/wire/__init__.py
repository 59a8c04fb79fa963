"""Answer renderers: a ``Plan`` to the bytes or objects of one API's wire format, with no I/O.

Kept apart from the endpoints so the exact shapes (which the gateway's converters are tested
against byte for byte) can be read without the request handling around them.
"""
