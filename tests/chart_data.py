"""What a Vega-Lite chart drawn with st.vega_lite_chart shows, read from an AppTest run: its spec
and its rows (the data the chart draws), found by its accessible name (`alt`: what a screen
reader announces), since Streamlit gives a chart without selections no id."""
from __future__ import annotations

import json

from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest


def vega_charts(at: AppTest, name: str | None = None) -> list[dict]:
    """Every Vega-Lite chart on the page (whose accessible name starts with `name`, when given),
    as {"spec": the spec, "rows": [one dict per data row], "alt": its accessible name}."""
    out = []
    for c in at.get("vega_lite_chart"):
        if name is not None and not c.proto.alt.startswith(name):
            continue
        rows = []
        if c.proto.HasField("data") and c.proto.data.data:
            df = convert_arrow_bytes_to_pandas_df(c.proto.data.data)
            rows = [{k: (None if v != v else v) for k, v in r.items()} for r in df.to_dict("records")]  # NaN -> None
        out.append({"spec": json.loads(c.proto.spec), "rows": rows, "alt": c.proto.alt})
    return out


def vega_chart(at: AppTest, name: str) -> dict:
    """The one Vega-Lite chart whose accessible name starts with `name`."""
    found = vega_charts(at, name)
    assert len(found) == 1, f"{len(found)} charts named {name!r}: {[c['alt'] for c in vega_charts(at)]}"
    return found[0]
