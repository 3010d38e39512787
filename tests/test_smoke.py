from tests.factories import create_advocate, create_program


async def test_program_advocate_redirect(client, tenant, db):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"])
    r = await client.get(f"/r/{advocate['code'].lower()}?ch=whatsapp", follow_redirects=False)
    assert r.status_code == 302, r.text
    print(r.headers)
