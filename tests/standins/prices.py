"""Stand-in for the Azure Retail Prices API (public, no authentication).

GET /api/retail/prices?$filter=...[&$skip=N]   (route "prices")

Shape (Microsoft Learn, "Azure Retail Prices overview",
https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices):
a page is {"BillingCurrency": "USD", "CustomerEntityId": "Default",
"CustomerEntityType": "Retail", "Items": [...], "NextPageLink": <url or null>,
"Count": <items on this page>}; an item carries currencyCode, tierMinimumUnits,
retailPrice, unitPrice, armRegionName, location, effectiveStartDate, meterId,
meterName, productId, skuId, productName, skuName, serviceName, serviceId,
serviceFamily, unitOfMeasure ("1 Hour"), type (Consumption, DevTestConsumption,
Reservation), reservationTerm (reservations), isPrimaryMeterRegion, armSkuName.

The filter is OData `field eq 'value'` clauses joined by `and`; without an
api-version (the default version) values compare case-insensitively, as the
API did before 2023-01-01-preview; with api-version 2023-01-01-preview they
compare exactly. `priceType` filters on `type`. Anything else in the filter is
400, and so is a missing filter here (the real API would list everything; no
client of ours asks that). Pages hold `page_size` items (the real API: 100);
NextPageLink points at the same URL with `$skip`.

The price sheet, per region and VM size: the Linux pay-as-you-go meter and,
around it, the meters a client must not pick: Windows, Spot, Low Priority,
Windows Low Priority, DevTestConsumption, 1- and 3-year reservations, a
secondary meter region (isPrimaryMeterRegion false) and an older price of the
same meter. The Linux item comes last, so a client that reads only the first
page misses it. Prices are illustrative, not Azure's.
"""

import re
import urllib.parse
import uuid

from .server import Request, Response, Route, Service

DEFAULT_SHEET = {
    ("eastus", "Standard_DS3_v2"): 0.229,
    ("eastus", "Standard_D4s_v3"): 0.192,
    ("eastus", "Standard_NC6s_v3"): 3.06,
    ("westeurope", "Standard_DS3_v2"): 0.263,
}

_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_FIELDS = {"servicename": "serviceName", "armregionname": "armRegionName",
           "armskuname": "armSkuName", "pricetype": "type", "skuname": "skuName",
           "productname": "productName", "metername": "meterName",
           "servicefamily": "serviceFamily", "location": "location",
           "currencycode": "currencyCode"}


def _items(region: str, sku: str, linux: float) -> list[dict]:
    short = sku.split("_", 1)[1].replace("_", " ")  # "DS3 v2"
    product = f"Virtual Machines {short.split()[0]} Series"

    def item(price, product_name, sku_name, type_="Consumption", primary=True,
             start="2024-02-01T00:00:00Z", **extra):
        return dict({
            "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price,
            "unitPrice": price, "armRegionName": region, "location": region,
            "effectiveStartDate": start, "meterId": str(uuid.uuid4()),
            "meterName": sku_name, "productId": "DZH318Z0BQ4X",
            "skuId": f"DZH318Z0BQ4X/{uuid.uuid4().hex[:4]}", "productName": product_name,
            "skuName": sku_name, "serviceName": "Virtual Machines",
            "serviceId": "DZH313Z7MMC8", "serviceFamily": "Compute",
            "unitOfMeasure": "1 Hour", "type": type_, "isPrimaryMeterRegion": primary,
            "armSkuName": sku}, **extra)

    return [
        item(round(linux * 1.9, 4), f"{product} Windows", short),
        item(round(linux * 0.15, 4), product, f"{short} Spot"),
        item(round(linux * 0.38, 4), f"{product} Windows", f"{short} Low Priority"),
        item(round(linux * 0.5, 4), product, short, type_="DevTestConsumption"),
        item(round(linux * 5000, 2), product, short, type_="Reservation",
             reservationTerm="1 Year"),
        item(round(linux * 9000, 2), product, short, type_="Reservation",
             reservationTerm="3 Years"),
        item(round(linux * 1.1, 4), product, short, primary=False),
        item(round(linux * 0.9, 4), product, short, start="2021-06-01T00:00:00Z"),
        item(round(linux * 0.2, 4), product, f"{short} Low Priority"),
        item(linux, product, short),
    ]


class PricesService(Service):
    def __init__(self, sheet: dict[tuple[str, str], float] | None = None,
                 page_size: int = 4) -> None:
        self.page_size = page_size
        self.base_url = ""  # set by the stack once the server has its port
        self.items = [i for (region, sku), price in (sheet or DEFAULT_SHEET).items()
                      for i in _items(region, sku, price)]

    def routes(self) -> list[Route]:
        return [Route("prices", ("GET",), re.compile(r"/api/retail/prices", re.IGNORECASE),
                      self._prices)]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"Error": {"Code": code, "Message": message}})

    def linux_price(self, region: str, sku: str) -> float:
        """The price a client must pick for (region, size)."""
        return next(i["retailPrice"] for i in reversed(self.items)
                    if i["armRegionName"] == region and i["armSkuName"] == sku)

    def low_priority_price(self, region: str, sku: str) -> float:
        return next(i["retailPrice"] for i in reversed(self.items)
                    if i["armRegionName"] == region and i["armSkuName"] == sku
                    and i["skuName"].endswith("Low Priority")
                    and "Windows" not in i["productName"])

    def _parse(self, text: str) -> list[tuple[str, str]] | None:
        clauses = []
        for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
            match = _CLAUSE.fullmatch(part)
            if not match or match[1].lower() not in _FIELDS:
                return None
            clauses.append((_FIELDS[match[1].lower()], match[2].replace("''", "'")))
        return clauses

    def _prices(self, request: Request, match: re.Match) -> Response:
        text = request.query_one("$filter")
        if not text:
            return self.error(400, "BadRequest", "This stand-in answers filtered queries only.")
        clauses = self._parse(text)
        if clauses is None:
            return self.error(400, "BadRequest", f"Invalid OData filter: {text}")
        exact = request.query_one("api-version") == "2023-01-01-preview"
        try:
            skip = int(request.query_one("$skip") or 0)
        except ValueError:
            return self.error(400, "BadRequest", "Invalid $skip.")

        def matches(item: dict) -> bool:
            return all((str(item.get(field, "")) == value) if exact else
                       (str(item.get(field, "")).lower() == value.lower())
                       for field, value in clauses)

        found = [i for i in self.items if matches(i)]
        page = found[skip:skip + self.page_size]
        following = skip + self.page_size
        link = None
        if following < len(found):
            query = {k: v[0] for k, v in request.query.items() if k != "$skip"}
            query["$skip"] = str(following)
            link = f"{self.base_url}{request.path}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
        return Response.json(200, {"BillingCurrency": "USD", "CustomerEntityId": "Default",
                                    "CustomerEntityType": "Retail", "Items": page,
                                    "NextPageLink": link, "Count": len(page)})
