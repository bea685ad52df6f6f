"""Outbound campaigns, I/O side: call-list import, DNC files, CLI glue.

The pure campaign logic lives in :mod:`callcenterd.core.campaigns`; this
package reads files and hands :class:`~callcenterd.core.campaigns.model.Lead`
objects to the store.
"""
