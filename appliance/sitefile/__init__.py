"""The declarative site file: `linebox apply FILE` makes the appliance match
it, `linebox export` writes the current state back. examples/site.toml shows
every key; `schema` checks a file, `apply` writes it, `export` reads it back."""

from appliance.sitefile.apply import ApplyResult, apply_file, apply_site
from appliance.sitefile.export import export_site, export_text
from appliance.sitefile.schema import SiteFile, parse_site

__all__ = [
    "ApplyResult",
    "SiteFile",
    "apply_file",
    "apply_site",
    "export_site",
    "export_text",
    "parse_site",
]
