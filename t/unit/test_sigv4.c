/*
 * SigV4 against independent references: AWS's published test suite
 * (aws-sig-v4-test-suite, cases whose canonical URI is not normalised,
 * since S3 signs paths as sent), the S3 examples of AWS's "Signature
 * Version 4 header-based authentication" page (signatures as published;
 * canonical requests and strings to sign produced by botocore), the
 * signing key example of AWS's SigV4 documentation, and Python's
 * urllib.parse.quote / botocore for encoding and query order.
 */

#include <stdlib.h>

#include "nixcache_sigv4.h"
#include "unit.h"


#define MAX_PARAMS   4
#define MAX_HEADERS  8


typedef struct {
    const char  *name;
    const char  *method;
    const char  *path;                       /* raw, encoded by the test */
    const char  *params[MAX_PARAMS][2];      /* raw */
    const char  *headers[MAX_HEADERS][2];
    const char  *payload_hash;
    const char  *creq;
    const char  *sts;
    const char  *signature;
    const char  *authorization;
} vector_t;


/*
 * Generated from AWS's files by t/sigv4/aws-suite-to-c.py (inputs parsed
 * from each request.txt, expected values copied from
 * header-canonical-request.txt, header-string-to-sign.txt,
 * header-signature.txt and header-signed-request.txt).  Credentials
 * AKIDEXAMPLE, region us-east-1, service "service", 20150830T123600Z.
 */

static const vector_t  aws_suite[] = {
    {
        "get-header-key-duplicate", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", "value2" },
            { "My-Header1", "value2" },
            { "My-Header1", "value1" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:value2,value2,value1\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signa"
        "ture=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5"
        "138ea"
    },
    {
        "get-header-value-multiline", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", "value1\n  value2\n     value3" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:value1 value2 value3\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "e99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8",
        "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signa"
        "ture=cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a7357"
        "5eefd"
    },
    {
        "get-header-value-order", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", "value4" },
            { "My-Header1", "value1" },
            { "My-Header1", "value3" },
            { "My-Header1", "value2" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:value4,value1,value3,value2\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signa"
        "ture=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c7"
        "55c01"
    },
    {
        "get-header-value-trim", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", " value1" },
            { "My-Header2", " \"a   b   c\"" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:value1\n"
        "my-header2:\"a b c\"\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;my-header2;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-"
        "date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b36705"
        "5dee359757a9c736"
    },
    {
        "get-relative-relative-unnormalized", "GET",
        "/example1/example2/../..",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/example1/example2/../..\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "76115030c0f3ff06c20fdff5ceb6d5e0b835a1743e00b94fea7c7f381269437b",
        "dc33e0856fd4baca4d7aa2146c38958283844764f38c74252a333df5e613003b",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=dc33e0"
        "856fd4baca4d7aa2146c38958283844764f38c74252a333df5e613003b"
    },
    {
        "get-relative-unnormalized", "GET",
        "/example/..",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/example/..\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "0511f456aa502b456d135fcb9d749374a55228f9dbeedda1eacf659e05b0615b",
        "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=eca7ea"
        "d57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282"
    },
    {
        "get-slash-dot-slash-unnormalized", "GET",
        "/./",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/./\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "d67825e2268bd77a97c7688b8d72c31a3c1855b309808505ba0a9747d2465aa7",
        "68714168e6557f8f2de0ef956fc24dc2593a4bd2961f8df51898d8a134695145",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=687141"
        "68e6557f8f2de0ef956fc24dc2593a4bd2961f8df51898d8a134695145"
    },
    {
        "get-slash-pointless-dot-unnormalized", "GET",
        "/./example",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/./example\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "73895e0e829507e28e39fd24669aedc2434a8e179e547e3c075b42921f952cdb",
        "beb03f223f7deae4146464f06e29eebbee9c8afbe15c290cf07aa8b119e14cff",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=beb03f"
        "223f7deae4146464f06e29eebbee9c8afbe15c290cf07aa8b119e14cff"
    },
    {
        "get-slash-unnormalized", "GET",
        "//",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "//\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "80cb39203d058af815de2b79250ff56e1b73eb9b4718c86556cdc6f150c5d209",
        "c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=c88bcd"
        "3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e"
    },
    {
        "get-slashes-unnormalized", "GET",
        "//example//",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "//example//\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "528ec3105ee1f34ab014bb0a1a45da0ed2742a4fea3555149e5b4d5d201eb240",
        "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=87cca1"
        "17541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"
    },
    {
        "get-space-normalized", "GET",
        "/example space/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/example%20space/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487"
        "583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
    },
    {
        "get-space-unnormalized", "GET",
        "/example space/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/example%20space/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487"
        "583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
    },
    {
        "get-unreserved", "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
        "xyz",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
        "xyz\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef74"
        "94c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"
    },
    {
        "get-utf8", "GET",
        "/\341\210\264",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/%E1%88%B4\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=831801"
        "8e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
    },
    {
        "get-vanilla", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00f"
        "a31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    },
    {
        "get-vanilla-empty-query-key", "GET",
        "/",
        {
            { "Param1", "value1" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "Param1=value1\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=a67d58"
        "2fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"
    },
    {
        "get-vanilla-query", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00f"
        "a31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    },
    {
        "get-vanilla-query-order-encoded", "GET",
        "/",
        {
            { "Param-3", "Value3" },
            { "Param", "Value2" },
            { "\341\210\264", "Value1" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71",
        "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=371d37"
        "13e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"
    },
    {
        "get-vanilla-query-order-key-case", "GET",
        "/",
        {
            { "Param2", "value2" },
            { "Param1", "value1" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "Param1=value1&Param2=value2\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d91"
        "8cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    },
    {
        "get-vanilla-query-unreserved", "GET",
        "/",
        {
            {
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
                "uvwxyz",
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
                "uvwxyz"
            },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"
        "yz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
        "vwxyz\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=9c3e54"
        "bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
    },
    {
        "get-vanilla-utf8-query", "GET",
        "/",
        {
            { "\341\210\264", "bar" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "%E1%88%B4=bar\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8"
        "eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
    },
    {
        "get-vanilla-with-session-token", "GET",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            {
                "X-Amz-Security-Token",
                "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf19"
                "4267"
            },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "GET\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "x-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa"
        "00fa31553b73ebf194267\n"
        "\n"
        "host;x-amz-date;x-amz-security-token\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
        "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-to"
        "ken, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a970"
        "44c66dd9f74e7f8"
    },
    {
        "post-header-key-case", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1"
        "a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    },
    {
        "post-header-key-sort", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", "value1" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:value1\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signa"
        "ture=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf1"
        "8852c"
    },
    {
        "post-header-value-case", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "My-Header1", "VALUE1" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "my-header1:VALUE1\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;my-header1;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signa"
        "ture=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b9"
        "74b7d"
    },
    {
        "post-sts-header-after", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1"
        "a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    },
    {
        "post-sts-header-before", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            {
                "X-Amz-Security-Token",
                "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4"
                "FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI"
                "/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQ"
                "DYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT"
                "38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9K"
                "SYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
            },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "x-amz-security-token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPB"
        "SM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8"
        "YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsbur"
        "EDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo"
        "0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9"
        "KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n"
        "\n"
        "host;x-amz-date;x-amz-security-token\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-to"
        "ken, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c"
        "64533a82be05ead"
    },
    {
        "post-vanilla", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1"
        "a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    },
    {
        "post-vanilla-empty-query-value", "POST",
        "/",
        {
            { "Param1", "value1" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "Param1=value1\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=280384"
        "55d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
    },
    {
        "post-vanilla-query", "POST",
        "/",
        {
            { "Param1", "value1" },
            { NULL, NULL }
        },
        {
            { "Host", "example.amazonaws.com" },
            { "X-Amz-Date", "20150830T123600Z" },
            { NULL, NULL }
        },
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "POST\n"
        "/\n"
        "Param1=value1\n"
        "host:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=host;x-amz-date, Signature=280384"
        "55d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
    },
    {
        "post-x-www-form-urlencoded", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            { "Content-Type", "application/x-www-form-urlencoded" },
            { "Host", "example.amazonaws.com" },
            { "Content-Length", "13" },
            { "X-Amz-Date", "20150830T123600Z" },
            {
                "X-Amz-Content-SHA256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d"
                "0b6e"
            },
            { NULL, NULL }
        },
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        "POST\n"
        "/\n"
        "\n"
        "content-length:13\n"
        "content-type:application/x-www-form-urlencoded\n"
        "host:example.amazonaws.com\n"
        "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192"
        "329106275f4c7b24d0b6e\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "content-length;content-type;host;x-amz-content-sha256;x-amz-date"
        "\n"
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
        "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=content-length;content-type;host;"
        "x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef4"
        "3de4db0d8f280229d82040bfac253562e56c3f20e0b"
    },
    {
        "post-x-www-form-urlencoded-parameters", "POST",
        "/",
        {
            { NULL, NULL }
        },
        {
            {
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8"
            },
            { "Host", "example.amazonaws.com" },
            { "Content-Length", "13" },
            { "X-Amz-Date", "20150830T123600Z" },
            {
                "X-Amz-Content-SHA256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d"
                "0b6e"
            },
            { NULL, NULL }
        },
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        "POST\n"
        "/\n"
        "\n"
        "content-length:13\n"
        "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
        "host:example.amazonaws.com\n"
        "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192"
        "329106275f4c7b24d0b6e\n"
        "x-amz-date:20150830T123600Z\n"
        "\n"
        "content-length;content-type;host;x-amz-content-sha256;x-amz-date"
        "\n"
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "a89f1a5b53e37702ee6363ce1da3ce8f54386f3c8f352ae652153c2982a0bc4d",
        "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/servi"
        "ce/aws4_request, SignedHeaders=content-length;content-type;host;"
        "x-amz-content-sha256;x-amz-date, Signature=328d1b9eaadca9f5818ef"
        "05e8392801e091653bafec24fcab71e7344e7f51422"
    },
};


/*
 * S3's header-based authentication examples: credentials
 * AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,
 * us-east-1, 20130524T000000Z.  The path field is already the encoded URI.
 */

static const vector_t  s3_examples[] = {
    {
        "s3-get-object", "GET",
        "/test.txt",
        {
            { NULL, NULL }
        },
        {
            { "Host", "examplebucket.s3.amazonaws.com" },
            { "Range", "bytes=0-9" },
            { "x-amz-content-sha256", NIXCACHE_SIGV4_EMPTY_SHA256 },
            { "x-amz-date", "20130524T000000Z" },
            { NULL, NULL }
        },
        NIXCACHE_SIGV4_EMPTY_SHA256,
        "GET\n"
        "/test.txt\n"
        "\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "range:bytes=0-9\n"
        "x-amz-content-sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1"
        "/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
        "x-amz-date, Signature="
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    },
    {
        "s3-put-object", "PUT",
        "/test%24file.text",
        {
            { NULL, NULL }
        },
        {
            { "Host", "examplebucket.s3.amazonaws.com" },
            { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
            { "x-amz-date", "20130524T000000Z" },
            { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
            {
                "x-amz-content-sha256",
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b8"
                "03f8b072"
            },
            { NULL, NULL }
        },
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        "PUT\n"
        "/test%24file.text\n"
        "\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\n"
        "x-amz-storage-class:REDUCED_REDUNDANCY\n"
        "\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1"
        "/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256;"
        "x-amz-date;x-amz-storage-class, Signature="
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    },
    {
        "s3-get-bucket-lifecycle", "GET",
        "/",
        {
            { "lifecycle", "" },
            { NULL, NULL }
        },
        {
            { "Host", "examplebucket.s3.amazonaws.com" },
            { "x-amz-date", "20130524T000000Z" },
            { "x-amz-content-sha256", NIXCACHE_SIGV4_EMPTY_SHA256 },
            { NULL, NULL }
        },
        NIXCACHE_SIGV4_EMPTY_SHA256,
        "GET\n"
        "/\n"
        "lifecycle=\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1"
        "/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;"
        "x-amz-date, Signature="
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    },
    {
        "s3-list-objects", "GET",
        "/",
        {
            { "prefix", "J" },
            { "max-keys", "2" },
            { NULL, NULL }
        },
        {
            { "Host", "examplebucket.s3.amazonaws.com" },
            { "x-amz-date", "20130524T000000Z" },
            { "x-amz-content-sha256", NIXCACHE_SIGV4_EMPTY_SHA256 },
            { NULL, NULL }
        },
        NIXCACHE_SIGV4_EMPTY_SHA256,
        "GET\n"
        "/\n"
        "max-keys=2&prefix=J\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1"
        "/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;"
        "x-amz-date, Signature="
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    },
};


static nixcache_sigv4_str_t
str(const char *s)
{
    nixcache_sigv4_str_t  r;

    r.len = s != NULL ? strlen(s) : 0;
    r.data = s;

    return r;
}


/*
 * Signs one vector and checks every step.  With encode_path the vector's
 * path is raw and goes through nixcache_sigv4_uri_encode() first.
 */

static void
check_vector(const vector_t *v, const nixcache_sigv4_credentials_t *cred,
    const char *region, const char *service, const char *date,
    int encode_path)
{
    char                      uri[1024], query[1024], out[2048];
    char                      sig[NIXCACHE_SIGV4_HEX_LEN];
    size_t                    i, nparams;
    ssize_t                   n;
    unsigned char             key[NIXCACHE_SIGV4_KEY_LEN];
    nixcache_sigv4_pair_t     params[MAX_PARAMS], headers[MAX_HEADERS];
    nixcache_sigv4_request_t  req;

    memset(&req, 0, sizeof(req));

    req.method = str(v->method);

    if (encode_path) {
        req.uri.len = nixcache_sigv4_uri_encode(uri, v->path, strlen(v->path),
                                                NIXCACHE_SIGV4_PATH);
        req.uri.data = uri;

    } else {
        req.uri = str(v->path);
    }

    for (nparams = 0; v->params[nparams][0] != NULL; nparams++) {
        params[nparams].name = str(v->params[nparams][0]);
        params[nparams].value = str(v->params[nparams][1]);
    }

    n = nixcache_sigv4_query(query, sizeof(query), params, nparams);
    ok(n >= 0 && (size_t) n <= sizeof(query), "%s: query fits", v->name);
    req.query.len = (size_t) n;
    req.query.data = query;

    for (i = 0; v->headers[i][0] != NULL; i++) {
        headers[i].name = str(v->headers[i][0]);
        headers[i].value = str(v->headers[i][1]);
    }

    req.headers = headers;
    req.nheaders = i;
    req.payload_hash = str(v->payload_hash);
    req.region = str(region);
    req.service = str(service);
    req.amz_date = str(date);

    n = nixcache_sigv4_canonical_request(out, sizeof(out), &req);
    is_str(out, n, v->creq, "%s: canonical request", v->name);

    n = nixcache_sigv4_string_to_sign(out, sizeof(out), &req);
    is_str(out, n, v->sts, "%s: string to sign", v->name);

    ok(nixcache_sigv4_signing_key(key, &req, &cred->secret_access_key) == 0
       && nixcache_sigv4_signature(sig, &req, key) == 0,
       "%s: signature made", v->name);
    is_str(sig, sizeof(sig), v->signature, "%s: signature", v->name);

    n = nixcache_sigv4_sign(out, sizeof(out), &req, cred);
    is_str(out, n, v->authorization, "%s: authorization", v->name);
}


static void
test_encode(void)
{
    char         buf[256];
    size_t       n;
    const char  *raw;

    /* expected values from Python's urllib.parse.quote */

    raw = "/nar/a b+c=d/\303\251~!*'()&$,;:@%";

    n = nixcache_sigv4_uri_encode(buf, raw, strlen(raw), NIXCACHE_SIGV4_PATH);
    is_str(buf, n, "/nar/a%20b%2Bc%3Dd/%C3%A9~%21%2A%27%28%29%26%24%2C%3B%3A"
           "%40%25", "path encoding keeps '/'");

    is_u64(nixcache_sigv4_uri_encode(NULL, raw, strlen(raw),
                                     NIXCACHE_SIGV4_PATH),
           n, "path encoding counts without writing");

    n = nixcache_sigv4_uri_encode(buf, raw + 5, strlen(raw + 5), 0);
    is_str(buf, n, "a%20b%2Bc%3Dd%2F%C3%A9~%21%2A%27%28%29%26%24%2C%3B%3A"
           "%40%25", "component encoding encodes '/'");

    raw = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    n = nixcache_sigv4_uri_encode(buf, raw, strlen(raw), 0);
    is_str(buf, n, raw, "unreserved characters stay");

    n = nixcache_sigv4_uri_encode(buf, "\000\377", 2, 0);
    is_str(buf, n, "%00%FF", "NUL and 0xff");
}


static const char  *query_raw[][2] = {
    { "a/", "1" }, { "a-", "2" }, { "a", "3" }, { "b", "" },
    { "a", "1" }, { "A", "z" }, { "a~", "0" }, { "a b", "x y" },
    { "list-type", "2" }, { "prefix", "nar/" }
};

#define QUERY_N  (sizeof(query_raw) / sizeof(query_raw[0]))


static void
test_query(void)
{
    char                   buf[512];
    size_t                 i;
    ssize_t                n;
    nixcache_sigv4_pair_t  p[QUERY_N];

    static const char      want[] =
        "A=z&a=1&a=3&a%20b=x%20y&a%2F=1&a-=2&a~=0&b=&list-type=2"
        "&prefix=nar%2F";

    for (i = 0; i < QUERY_N; i++) {
        p[i].name = str(query_raw[i][0]);
        p[i].value = str(query_raw[i][1]);
    }

    /* expected: botocore's SigV4Auth._canonical_query_string_params */

    n = nixcache_sigv4_query(buf, sizeof(buf), p, QUERY_N);
    is_str(buf, n, want, "query sorted by encoded name, then value");

    n = nixcache_sigv4_query(buf, sizeof(buf), p, 0);
    is_u64(n, 0, "no parameters: empty query");

    n = nixcache_sigv4_query(buf, 5, p, QUERY_N);
    ok(n == (ssize_t) strlen(want) && memcmp(buf, "A=z&a", 5) == 0,
       "short buffer: full length returned, cap bytes written");
}


static void
test_payload_hash(void)
{
    char  hex[NIXCACHE_SIGV4_HEX_LEN];

    /* AWS's test suite (post-x-www-form-urlencoded) and S3 PUT example */

    ok(nixcache_sigv4_payload_hash(hex, "Param1=value1", 13) == 0
       && memcmp(hex, "9095672bbd1f56dfc5b65f3e153adc8731a4a6541923291062"
                 "75f4c7b24d0b6e", sizeof(hex)) == 0,
       "payload hash of a form body");

    ok(nixcache_sigv4_payload_hash(hex, "Welcome to Amazon S3.", 21) == 0
       && memcmp(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e420"
                 "34a8b803f8b072", sizeof(hex)) == 0,
       "payload hash of S3's PUT example");

    ok(nixcache_sigv4_payload_hash(hex, "", 0) == 0
       && memcmp(hex, NIXCACHE_SIGV4_EMPTY_SHA256, sizeof(hex)) == 0,
       "payload hash of nothing");
}


static void
test_signing_key(void)
{
    unsigned char             key[NIXCACHE_SIGV4_KEY_LEN];
    nixcache_sigv4_str_t      secret;
    nixcache_sigv4_request_t  req;

    /* AWS's SigV4 documentation: "Examples of how to derive a signing key" */

    static const unsigned char  want[NIXCACHE_SIGV4_KEY_LEN] = {
        0xc4, 0xaf, 0xb1, 0xcc, 0x57, 0x71, 0xd8, 0x71, 0x76, 0x3a, 0x39,
        0x3e, 0x44, 0xb7, 0x03, 0x57, 0x1b, 0x55, 0xcc, 0x28, 0x42, 0x4d,
        0x1a, 0x5e, 0x86, 0xda, 0x6e, 0xd3, 0xc1, 0x54, 0xa4, 0xb9
    };

    memset(&req, 0, sizeof(req));
    req.method = str("GET");
    req.uri = str("/");
    req.payload_hash = str(NIXCACHE_SIGV4_EMPTY_SHA256);
    req.region = str("us-east-1");
    req.service = str("iam");
    req.amz_date = str("20150830T123600Z");
    secret = str("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

    ok(nixcache_sigv4_signing_key(key, &req, &secret) == 0
       && memcmp(key, want, sizeof(want)) == 0,
       "signing key of AWS's derivation example");
}


static void
test_amz_date(void)
{
    char  buf[NIXCACHE_SIGV4_DATE_LEN];

    /* expected values from date -u -d @T +%Y%m%dT%H%M%SZ */

    ok(nixcache_sigv4_amz_date(buf, 1440938160) == 0, "amz date made");
    is_str(buf, sizeof(buf), "20150830T123600Z", "amz date of 1440938160");

    ok(nixcache_sigv4_amz_date(buf, 0) == 0, "amz date of the epoch made");
    is_str(buf, sizeof(buf), "19700101T000000Z", "amz date of the epoch");

    ok(nixcache_sigv4_amz_date(buf, 253402300799) == 0, "year 9999 made");
    is_str(buf, sizeof(buf), "99991231T235959Z", "amz date of 253402300799");

    ok(nixcache_sigv4_amz_date(buf, 253402300800) == -1, "year 10000 refused");
}


static void
test_invalid(void)
{
    char                          out[512];
    ssize_t                       n, full;
    nixcache_sigv4_pair_t         h[2];
    nixcache_sigv4_request_t      req, bad;
    nixcache_sigv4_credentials_t  cred;

    memset(&req, 0, sizeof(req));
    h[0].name = str("Host");
    h[0].value = str("bucket.example");
    h[1].name = str("X-Amz-Date");
    h[1].value = str("20150830T123600Z");
    req.method = str("GET");
    req.uri = str("/bucket/key");
    req.headers = h;
    req.nheaders = 2;
    req.payload_hash = str(NIXCACHE_SIGV4_UNSIGNED_PAYLOAD);
    req.region = str("eu-west-3");
    req.service = str("s3");
    req.amz_date = str("20150830T123600Z");
    cred.access_key_id = str("AKID");
    cred.secret_access_key = str("secret");

    full = nixcache_sigv4_sign(out, sizeof(out), &req, &cred);
    ok(full > 0, "valid request signs");

    memset(out, 'x', sizeof(out));
    n = nixcache_sigv4_sign(out, 10, &req, &cred);
    ok(n == full && out[10] == 'x', "short buffer: length, no overrun");

    ok(nixcache_sigv4_sign(NULL, 0, &req, &cred) == full,
       "NULL buffer: length only");

    bad = req;
    bad.amz_date = str("20150830 123600Z");
    ok(nixcache_sigv4_sign(out, sizeof(out), &bad, &cred) == -1,
       "malformed amz date refused");

    bad = req;
    bad.amz_date = str("20150830T123600");
    ok(nixcache_sigv4_canonical_request(out, sizeof(out), &bad) == -1,
       "short amz date refused");

    bad = req;
    bad.uri = str("bucket/key");
    ok(nixcache_sigv4_sign(out, sizeof(out), &bad, &cred) == -1,
       "relative uri refused");

    bad = req;
    bad.uri = str("/bucket/a key");
    ok(nixcache_sigv4_string_to_sign(out, sizeof(out), &bad) == -1,
       "unencoded space in uri refused");

    bad = req;
    bad.region = str("");
    ok(nixcache_sigv4_sign(out, sizeof(out), &bad, &cred) == -1,
       "empty region refused");

    bad = req;
    bad.service = str("s3/x");
    ok(nixcache_sigv4_sign(out, sizeof(out), &bad, &cred) == -1,
       "'/' in service refused");

    h[0].name = str("Ho st");
    ok(nixcache_sigv4_sign(out, sizeof(out), &req, &cred) == -1,
       "space in header name refused");
    h[0].name = str("Host:");
    ok(nixcache_sigv4_sign(out, sizeof(out), &req, &cred) == -1,
       "':' in header name refused");
    h[0].name = str("Host");

    cred.access_key_id = str("AK/ID");
    ok(nixcache_sigv4_sign(out, sizeof(out), &req, &cred) == -1,
       "'/' in access key id refused");
}


int
main(void)
{
    size_t                        i;
    nixcache_sigv4_credentials_t  aws, s3;

    aws.access_key_id = str("AKIDEXAMPLE");
    aws.secret_access_key = str("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    s3.access_key_id = str("AKIAIOSFODNN7EXAMPLE");
    s3.secret_access_key = str("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");

    for (i = 0; i < sizeof(aws_suite) / sizeof(aws_suite[0]); i++) {
        check_vector(&aws_suite[i], &aws, "us-east-1", "service",
                     "20150830T123600Z", 1);
    }

    for (i = 0; i < sizeof(s3_examples) / sizeof(s3_examples[0]); i++) {
        check_vector(&s3_examples[i], &s3, "us-east-1", "s3",
                     "20130524T000000Z", 0);
    }

    test_encode();
    test_query();
    test_payload_hash();
    test_signing_key();
    test_amz_date();
    test_invalid();

    return done_testing();
}
