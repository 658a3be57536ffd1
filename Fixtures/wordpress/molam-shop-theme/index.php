<?php
/** The only template: the site title and the latest posts. */
defined( 'ABSPATH' ) || exit;
?><!DOCTYPE html>
<html <?php language_attributes(); ?>>
<head><meta charset="<?php bloginfo( 'charset' ); ?>"><?php wp_head(); ?></head>
<body>
<h1><?php bloginfo( 'name' ); ?></h1>
<?php
while ( have_posts() ) {
	the_post();
	the_title( '<h2>', '</h2>' );
}
wp_footer();
?>
</body>
</html>
