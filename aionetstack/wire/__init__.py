"""Bytes <-> values. Pure and stateless: no clock, no I/O, stdlib only.

Every parser returns a value or raises :class:`aionetstack.errors.WireError`;
every builder returns exact bytes.
"""
