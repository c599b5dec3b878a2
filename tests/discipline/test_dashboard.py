"""The heads' dashboard in a real headless browser (Debian's chromium + chromedriver via selenium):
a head logs in with the department's token and sees the right numbers; an anonymous visitor and a
wrong token are refused."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import requests

from reglament import violations
from reglament.violations import Violation
from tests.discipline.conftest import HEAD_TOKEN, discipline_settings
from tests.engine.conftest import ACCOUNT, ANNA, BORIS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def site(amo, r):
    from werkzeug.serving import make_server

    from app import create_app

    app = create_app(discipline_settings(amo.server.url), r)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def seed(r):
    now = time.time()
    for i, (rule, who) in enumerate([("OVERDUE", ANNA), ("OVERDUE", ANNA), ("TASK_NAME", ANNA),
                                     ("NO_POSTPONE", BORIS), ("TASK_NAME", 9100003)]):
        violations.record(r, ACCOUNT, Violation(rule, f"k{i}", now - 60 * (i + 1), who, 700 + i,
                                                f"https://demo.amocrm.ru/leads/detail/{700 + i}", f"случай {i}"))
    violations.record(r, ACCOUNT, Violation("OVERDUE", "old", now - 3 * 86400, BORIS, 799))


def test_anonymous_visitor_is_refused(site, r):
    seed(r)
    resp = requests.get(site + "/dashboard/", allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/dashboard/login")
    wrong = requests.post(site + "/dashboard/login", data={"token": "guess"}, allow_redirects=False)
    assert wrong.status_code == 401 and "случай" not in wrong.text


def test_guessing_tokens_is_slowed_down_and_the_right_one_still_works_after_the_window(site, r):
    from app import dashboard

    for _ in range(dashboard.LOGIN_FAILURES):
        assert requests.post(site + "/dashboard/login", data={"token": "guess"}).status_code == 401
    refused = requests.post(site + "/dashboard/login", data={"token": HEAD_TOKEN}, allow_redirects=False)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= dashboard.LOGIN_WINDOW
    assert "Слишком много попыток" in refused.text
    for key in r.scan_iter(match="rg:_global:dashboard:login_failures:*"):
        r.delete(key)  # the window has passed
    ok = requests.post(site + "/dashboard/login", data={"token": HEAD_TOKEN}, allow_redirects=False)
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/dashboard/")


def test_head_logs_in_and_sees_the_numbers(site, browser, r, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def after_submit(element_id: str):
        # A click starts a navigation; wait for the next page rather than read the old one.
        return WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, element_id)))

    seed(r)
    from datetime import date, timedelta

    from tests.discipline.test_digest import seed_first_contacts

    seed_first_contacts(r, date.today() - timedelta(days=1))
    browser.get(site + "/dashboard/")
    assert browser.current_url.endswith("/dashboard/login")        # anonymous: sent to the login
    assert not browser.find_elements(By.ID, "today")
    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.ID, "submit").click()
    assert after_submit("error").text == "Неверный токен"

    browser.find_element(By.ID, "token").send_keys(HEAD_TOKEN)
    browser.find_element(By.ID, "submit").click()
    table = after_submit("today")
    anna = table.find_element(By.CSS_SELECTOR, 'tr[data-manager="Анна Смирнова"]')
    boris = table.find_element(By.CSS_SELECTOR, 'tr[data-manager="Борис Иванов"]')
    assert anna.find_element(By.CSS_SELECTOR, 'td[data-rule="OVERDUE"]').text == "2"
    assert anna.find_element(By.CSS_SELECTOR, 'td[data-rule="TASK_NAME"]').text == "1"
    assert anna.find_element(By.CSS_SELECTOR, "td.total").text == "3"
    assert boris.find_element(By.CSS_SELECTOR, "td.total").text == "1"
    assert boris.find_element(By.CSS_SELECTOR, "td.period").text == "2"      # with the one 3 days ago
    assert "Вера" not in browser.page_source                                  # not in this department
    contact = browser.find_element(By.CSS_SELECTOR, '#first-contact tr[data-manager="Анна Смирнова"]')
    assert contact.find_element(By.CSS_SELECTOR, "td.count").text == "3"
    assert contact.find_element(By.CSS_SELECTOR, "td.median").text == "30 мин"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart polyline")) == 2
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#current a")]
    assert "https://demo.amocrm.ru/leads/detail/700" in links and len(links) == 4
    assert browser.find_element(By.ID, "timers-none").text == "Открытых таймеров нет."
    assert browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="events"] td.depth').text == "0"
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
