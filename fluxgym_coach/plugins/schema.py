"""The ``plugins`` schema component of the dataset store (tables of the plugin API).

Folders, property groups, properties, tags, instance and image property
values, vector types, vectors (raw float32 bytes), per-plugin data, which file
each instance id was, and which images the import listeners were told of.
Importing this module registers the component; :class:`~fluxgym_coach.plugins.project.Project`
calls ``store.ensure_schema("plugins")``.
"""

from ..store import register_schema

register_schema(
    "plugins",
    [
        """
        CREATE TABLE plugin_data (
            key     TEXT PRIMARY KEY,
            value   TEXT NOT NULL
        );
        CREATE TABLE plugin_folders (
            id      INTEGER PRIMARY KEY,
            path    TEXT NOT NULL UNIQUE,
            name    TEXT NOT NULL,
            parent  INTEGER
        );
        CREATE TABLE plugin_property_groups (
            id      INTEGER PRIMARY KEY,
            name    TEXT NOT NULL
        );
        CREATE TABLE plugin_properties (
            id      INTEGER PRIMARY KEY,
            name    TEXT NOT NULL,
            type    TEXT NOT NULL,
            mode    TEXT NOT NULL,
            property_group_id INTEGER
        );
        CREATE TABLE plugin_tags (
            id          INTEGER PRIMARY KEY,
            property_id INTEGER NOT NULL,
            value       TEXT NOT NULL,
            parents     TEXT NOT NULL,
            color       INTEGER NOT NULL
        );
        CREATE TABLE plugin_instance_values (
            property_id INTEGER NOT NULL,
            instance_id INTEGER NOT NULL,
            value       TEXT NOT NULL,
            PRIMARY KEY (property_id, instance_id)
        );
        CREATE TABLE plugin_image_values (
            property_id INTEGER NOT NULL,
            sha1        TEXT NOT NULL,
            value       TEXT NOT NULL,
            PRIMARY KEY (property_id, sha1)
        );
        CREATE TABLE plugin_vector_types (
            id      INTEGER PRIMARY KEY,
            source  TEXT NOT NULL,
            params  TEXT NOT NULL
        );
        CREATE TABLE plugin_vectors (
            type_id INTEGER NOT NULL,
            sha1    TEXT NOT NULL,
            data    BLOB NOT NULL,
            PRIMARY KEY (type_id, sha1)
        );
        """,
        # v2: which file each instance id was, so values never move to another image when
        # the store reuses the id of a removed image (see Project.reconcile_instances).
        """
        CREATE TABLE plugin_instance_paths (
            id      INTEGER PRIMARY KEY,
            relpath TEXT NOT NULL
        );
        """,
        # v3: which image (relpath, digest) the on_instance_import listeners were told of, so
        # an image first indexed by another command (export, audit, caption, the TUI) is
        # announced at the next scan with plugins (see loader.notify_scan).
        """
        CREATE TABLE plugin_imported (
            relpath TEXT PRIMARY KEY,
            digest  TEXT NOT NULL
        );
        """,
    ],
)
