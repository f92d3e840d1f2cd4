"""Tools for development and demos: never imported by the library, never in a Lambda zip."""
