import pytest

from proguard_rails import ConfigurationError, Taxonomy
from proguard_rails.taxonomy import normalize_id, parse_id


def test_default_shape():
    t = Taxonomy.default()
    assert len(t.categories) == 11
    assert len(t.subcategories) == 28
    assert [c.id for c in t.categories] == [f"C{i}" for i in range(1, 12)]
    assert all(len(e.synonyms) == 5 for e in (*t.categories, *t.subcategories))


def test_lookup_by_id_and_name():
    t = Taxonomy.default()
    assert t.get("C8S1").name == "Weapons"
    assert t.get("c8s1").id == "C8S1"
    assert t.get("C8").name == "Dangerous Goods"
    assert t.get("weapons").id == "C8S1"
    assert t.get("Dangerous Goods").id == "C8"
    assert t.category_of("C8S1").id == "C8"
    assert t.find("C99") is None and "C99" not in t
    with pytest.raises(KeyError):
        t.get("nonexistent category")


def test_synonym_bank():
    t = Taxonomy.default()
    bank = t.synonym_bank()
    assert bank["C3S1"][0] == "Fraud and Scams"
    assert len(bank["C3S1"]) == 6
    assert t.synonyms("C3S1") == bank["C3S1"][1:]
    # the YAML has stray trailing spaces in a synonym; they are stripped
    assert all(s == s.strip() for phrases in bank.values() for s in phrases)


def test_hold_out_keeps_ids_and_leaves_gaps():
    t = Taxonomy.default().hold_out(["C3", "C8S1"])
    assert "C3" not in t and "C3S1" not in t
    assert "C8" in t and "C8S1" not in t and t.get("C8S2").id == "C8S2"
    assert [c.id for c in t.categories][:3] == ["C1", "C2", "C4"]
    block = t.render()
    assert "C3:" not in block and "C8S1:" not in block and "\nC4: " in block
    # names work too
    assert "C7S1" not in Taxonomy.default().hold_out(["Hate Speech and Discrimination"])


def test_keep_only_and_rename_and_add():
    t = Taxonomy.default()
    k = t.keep_only(["C8S1", "C4"])
    assert [c.id for c in k.categories] == ["C4", "C8"]
    assert [s.id for s in k.get("C8").subcategories] == ["C8S1"]  # type: ignore[union-attr]
    r = t.rename("C8S1", "Firearms", "Guns and their parts.")
    assert r.get("C8S1").name == "Firearms" and r.get("C8S1").description == "Guns and their parts."
    assert t.get("C8S1").name == "Weapons"  # immutable
    a = t.add_category("Agent Misuse", "Agents taking harmful actions.", synonyms=["Rogue agent"],
                       subcategories=[{"name": "Unauthorized Purchases", "description": "Buys without consent."}])
    assert a.get("C12").name == "Agent Misuse" and a.get("C12S1").name == "Unauthorized Purchases"
    assert "C12S1: Unauthorized Purchases — Buys without consent." in a.render()
    s = t.add_subcategory("C8", "Drones", "Armed drones.")
    assert s.get("C8S4").name == "Drones"


def test_custom_yaml_round_trip_keeps_gaps(tmp_path):
    t = Taxonomy.default().hold_out(["C2"])
    path = tmp_path / "policy.yaml"
    path.write_text(t.to_yaml(), encoding="utf-8")
    back = Taxonomy.from_yaml(path)
    assert back == t
    assert back.render() == t.render()


def test_explicit_ids_are_reserved_before_positional_ones():
    t = Taxonomy.from_dict([{"category": "A"}, {"id": "C1", "category": "B"}])
    assert t.get("A").id == "C2" and t.get("B").id == "C1"


def test_custom_from_dict_assigns_ids():
    t = Taxonomy.from_dict([
        {"category": "Spam", "description": "Unwanted bulk content.",
         "subcategories": [{"name": "Link spam", "description": "Links."}]},
        {"id": "C5", "name": "Scams", "description": "Fraud."},
    ])
    assert [c.id for c in t.categories] == ["C1", "C5"]
    assert t.get("C1S1").name == "Link spam"
    assert t.render() == "\nC1: Spam — Unwanted bulk content.\n  C1S1: Link spam — Links.\nC5: Scams — Fraud.\n"


def test_invalid_taxonomies_raise():
    with pytest.raises(ConfigurationError):
        Taxonomy.from_dict([{"id": "C1", "category": "A"}, {"id": "C1", "category": "B"}])
    with pytest.raises(ConfigurationError):
        Taxonomy.from_dict([{"description": "no name"}])
    with pytest.raises(ConfigurationError):
        Taxonomy.from_dict([{"id": "X1", "category": "bad id"}])


def test_id_helpers():
    assert parse_id("C10S3") == (10, 3)
    assert parse_id("c2") == (2, None)
    assert parse_id("C2S") is None
    assert normalize_id(" c3s2 ") == "C3S2"


def test_fingerprint_changes_with_policy():
    t = Taxonomy.default()
    assert t.fingerprint == Taxonomy.default().fingerprint
    assert t.fingerprint != t.hold_out(["C1"]).fingerprint
