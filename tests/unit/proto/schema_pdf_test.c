/*
 * schema_pdf_test: a "pdf" route's configuration in the snapshot schema (PROTOCOL.md section 5, "pdf route";
 * proto/schema_pdf.c), checked on the route alone and as /routes/0 of a body (schema_policy_cases.h): every member at
 * its bounds and one past them, reals, strings, null, booleans, unknown members, the enums' exact spelling, the file
 * name's alphabet and suffix, and the kind rules around it (the object required by kind "pdf", refused otherwise).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "schema_policy_cases.h"

#define PDF(members) R(",\"kind\":\"pdf\",\"pdf\":{" members "}")
#define D(members) PDF("\"defaults\":{" members "}")
#define M(members) D("\"margins_mm\":{" members "}")
#define P "/pdf"
#define PD "/pdf/defaults"
#define PM "/pdf/defaults/margins_mm"

static void test_pdf_members(void **state)
{
    static const case_t cases[] = {
        {PDF(""), NULL, NULL},
        {PDF("\"mode\":\"render\",\"filename\":\"document.pdf\",\"max_input_bytes\":1048576,\"max_output_bytes\":20971520,"
             "\"timeout_ms\":30000,\"defaults\":{\"page_size\":\"A4\",\"orientation\":\"portrait\","
             "\"margins_mm\":{\"top\":10,\"right\":10,\"bottom\":10,\"left\":10}}"),
         NULL, NULL},
        {PDF("\"mode\":\"source\""), NULL, NULL},
        {PDF("\"max_input_bytes\":1,\"max_output_bytes\":1024,\"timeout_ms\":100"), NULL, NULL},
        {PDF("\"max_input_bytes\":16777216,\"max_output_bytes\":67108864,\"timeout_ms\":300000"), NULL, NULL},
        /* kind and object */
        {R(",\"kind\":\"pdf\""), "missing_field", P},
        {R(",\"kind\":\"pdf\",\"pdf\":null"), "invalid", P},
        {R(",\"kind\":\"pdf\",\"pdf\":[]"), "invalid", P},
        {R(",\"pdf\":{}"), "invalid", P},
        {R(",\"kind\":\"proxy\",\"pdf\":{}"), "invalid", P},
        {R(",\"kind\":\"PDF\",\"pdf\":{}"), "invalid", "/kind"},
        {PDF("\"engine\":\"chrome\""), "unknown_field", P "/engine"},
        /* mode */
        {PDF("\"mode\":\"Render\""), "invalid", P "/mode"},
        {PDF("\"mode\":\"print\""), "invalid", P "/mode"},
        {PDF("\"mode\":null"), "invalid", P "/mode"},
        {PDF("\"mode\":1"), "invalid", P "/mode"},
        /* filename */
        {PDF("\"filename\":\"a.pdf\""), NULL, NULL},
        {PDF("\"filename\":\"Report_2026-11.v2.pdf\""), NULL, NULL},
        {PDF("\"filename\":\".pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a.PDF\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"report.txt\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a\\\"b.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a b.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"../x.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a;b.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a\\r\\nX: y.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"a\\u0000.pdf\""), "invalid", P "/filename"},
        {PDF("\"filename\":\"\""), "invalid", P "/filename"},
        {PDF("\"filename\":null"), "invalid", P "/filename"},
        {PDF("\"filename\":\""
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaa"
             ".pdf\""),
         "invalid", P "/filename"}, /* 129 bytes */
        /* sizes and timeout */
        {PDF("\"max_input_bytes\":0"), "invalid", P "/max_input_bytes"},
        {PDF("\"max_input_bytes\":16777217"), "invalid", P "/max_input_bytes"},
        {PDF("\"max_input_bytes\":1024.0"), "invalid", P "/max_input_bytes"},
        {PDF("\"max_input_bytes\":\"1MB\""), "invalid", P "/max_input_bytes"},
        {PDF("\"max_output_bytes\":1023"), "invalid", P "/max_output_bytes"},
        {PDF("\"max_output_bytes\":67108865"), "invalid", P "/max_output_bytes"},
        {PDF("\"max_output_bytes\":-9223372036854775808"), "invalid", P "/max_output_bytes"},
        {PDF("\"timeout_ms\":99"), "invalid", P "/timeout_ms"},
        {PDF("\"timeout_ms\":300001"), "invalid", P "/timeout_ms"},
        {PDF("\"timeout_ms\":true"), "invalid", P "/timeout_ms"},
        {PDF("\"timeout_ms\":null"), "invalid", P "/timeout_ms"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

static void test_pdf_defaults(void **state)
{
    static const case_t cases[] = {
        {D(""), NULL, NULL},
        {D("\"page_size\":\"A3\""), NULL, NULL},
        {D("\"page_size\":\"A5\",\"orientation\":\"landscape\""), NULL, NULL},
        {D("\"page_size\":\"Letter\""), NULL, NULL},
        {D("\"page_size\":\"Legal\""), NULL, NULL},
        {M(""), NULL, NULL},
        {M("\"top\":0,\"right\":100,\"bottom\":0,\"left\":100"), NULL, NULL},
        {PDF("\"defaults\":null"), "invalid", PD},
        {PDF("\"defaults\":\"A4\""), "invalid", PD},
        {D("\"size\":\"A4\""), "unknown_field", PD "/size"},
        {D("\"page_size\":\"a4\""), "invalid", PD "/page_size"},
        {D("\"page_size\":\"A6\""), "invalid", PD "/page_size"},
        {D("\"page_size\":\"letter\""), "invalid", PD "/page_size"},
        {D("\"page_size\":4"), "invalid", PD "/page_size"},
        {D("\"orientation\":\"Landscape\""), "invalid", PD "/orientation"},
        {D("\"orientation\":\"sideways\""), "invalid", PD "/orientation"},
        {D("\"margins_mm\":10"), "invalid", PM},
        {D("\"margins_mm\":[10,10,10,10]"), "invalid", PM},
        {M("\"middle\":1"), "unknown_field", PM "/middle"},
        {M("\"top\":-1"), "invalid", PM "/top"},
        {M("\"right\":101"), "invalid", PM "/right"},
        {M("\"bottom\":1.5"), "invalid", PM "/bottom"},
        {M("\"left\":\"10mm\""), "invalid", PM "/left"},
        {M("\"left\":null"), "invalid", PM "/left"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

/* An aggregate's object is refused on a pdf route; its ordinary policies are not. */
static void test_pdf_kind_rules(void **state)
{
    static const case_t cases[] = {
        {R(",\"kind\":\"pdf\",\"pdf\":{},\"aggregate\":{}"), "invalid", "/aggregate"},
        {R(",\"kind\":\"pdf\",\"pdf\":{},\"policies\":{\"cors\":{\"origins\":[\"*\"]}}"), NULL, NULL},
    };

    (void)state;
    RUN_ROUTES(cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pdf_members),
        cmocka_unit_test(test_pdf_defaults),
        cmocka_unit_test(test_pdf_kind_rules),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
