"""What the demo year is made of: item themes, titles, indicators, situations and alert paths."""

from __future__ import annotations

THEMES = {
    1: "coordinated investigation of people smuggling",
    2: "digital forensics for technology-facilitated trafficking",
    3: "victim identification by frontline officers",
    4: "joint operations against smuggling networks",
    5: "regional coordination with ASEAN partners",
    6: "ethical recruitment in supply chains",
    7: "civil society victim support",
    8: "online safety with technology platforms",
    9: "safe migration and digital literacy for youth",
    10: "operational information sharing",
    11: "Consultation Mechanism preparedness",
    12: "trafficking into online scam operations",
    13: "mass irregular movement by sea",
    14: "anti-corruption in border agencies",
    15: "frontline guides on irregular migration",
    16: "responsible use of biometrics",
    17: "victim-centred case management",
    18: "protection for women and children",
    19: "civil registration and vital statistics",
    20: "sustainable returns and reintegration",
    21: "returns and prosecution of perpetrators",
    22: "RSO capacity support",
    23: "Bali Process communications",
    24: "working group coordination",
    25: "RSO secondments and funding",
}
KIND_TITLES = {
    "workshop": "Regional workshop on {}",
    "training": "Training course on {}",
    "joint_operation": "Joint operation: {}",
    "public_information_campaign": "Public information campaign on {}",
    "research": "Research study on {}",
    "policy_dialogue": "Policy dialogue on {}",
    "table_top_exercise": "Table-top exercise: {}",
    "meeting": "Senior officials meeting on {}",
    "secondment": "Secondment to the RSO for {}",
    "funding_contribution": "Funding contribution for {}",
    "other": "Cooperation on {}",
}
#: Per activity type: indicator, unit, value range, and whether people are counted.
OUTPUTS: dict[str, list[tuple[str, str | None, int, int, bool]]] = {
    "workshop": [("participants", None, 15, 60, True)],
    "training": [("officers trained", None, 10, 80, True)],
    "joint_operation": [("victims identified", None, 3, 60, True), ("arrests", None, 1, 20, False)],
    "public_information_campaign": [("people reached", None, 2_000, 90_000, True)],
    "research": [("reports published", None, 1, 3, False)],
    "policy_dialogue": [("officials engaged", None, 8, 40, True)],
    "table_top_exercise": [("agencies exercised", None, 4, 15, False)],
    "meeting": [("participants", None, 20, 90, True)],
    "secondment": [("officers seconded", None, 1, 3, True)],
    "funding_contribution": [("funding committed", "USD", 50_000, 900_000, False)],
    "other": [],
}
AGE_GROUPS = ("18-24", "25-39", "40-59", "60+")
SITUATIONS = [
    ("maritime_distress", "Boat with {} people adrift off {}", ["Andaman Sea", "Timor Sea"]),
    ("mass_irregular_movement", "Mass movement of {} people towards {}", ["Cox's Bazar", "Aceh"]),
    (
        "online_scam_trafficking",
        "{} workers held in scam compounds near {}",
        ["Myawaddy", "Sihanoukville"],
    ),
    ("disaster_displacement", "{} displaced by flooding in {}", ["Sylhet", "Mindanao"]),
]
#: The path each demo alert takes (every state of the lifecycle is reached).
ALERT_PATHS = [
    ["raised"],
    ["raised"],
    ["acknowledged"],
    ["acknowledged"],
    ["escalated"],
    ["acknowledged", "convened"],
    ["acknowledged", "convened"],
    ["acknowledged", "convened", "outreach"],
    ["acknowledged", "convened", "outreach"],
    ["acknowledged", "convened", "outreach", "resolved"],
    ["acknowledged", "convened", "resolved"],
    ["withdrawn"],
]
RESTRICTED = 7  # index of the alert raised as restricted
